"""Checking the references of rows written in bulk to SQLite, a frame at a time.

SQLite enforcing foreign keys looks the parent of every reference up as it writes each row:
a B-tree search per key per row, in the order the rows come. For a million members' orders
that search cost more than writing the orders. A bulk store may instead have SQLite leave
them (`tidings.db.bulk_store(..., references="per_frame")`): each frame it appends is then
checked here, with one query per foreign key over the frame's distinct keys in order, and a
frame with a key that refers to nothing raises before any of its rows are written.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import polars as pl

JSON_ROW_START, JSON_ROW_END = '[{"keys":', "}]"  # around the keys in `json_array`'s frame


def enforced(raw: sqlite3.Connection) -> bool:
    """Whether SQLite checks each row's references itself on this connection."""
    return bool(raw.execute("PRAGMA foreign_keys").fetchone()[0])


def check_frame(raw: sqlite3.Connection, table: str, frame: pl.DataFrame) -> None:
    """Raises `sqlite3.IntegrityError` when a value of `frame` in a foreign-key column of
    `table` has no parent row (null references nothing and passes)."""
    for parent, column, key in references(raw, table):
        if column not in frame.columns:
            continue
        keys = frame[column].drop_nulls().unique().sort()  # in order: the parent's pages once
        if keys.is_empty():
            continue
        param = json_array(keys)
        # A parent key is unique: every key is found when the join has a row per key. (It
        # costs SQLite half what asking for a key that is not found does.)
        found = raw.execute(
            f"SELECT COUNT(*) FROM json_each(?) AS k JOIN {parent} p ON p.{key} = k.value",
            (param,),
        ).fetchone()[0]
        if found == keys.len():
            continue
        missing = raw.execute(
            f"SELECT k.value FROM json_each(?) AS k"
            f" WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = k.value) LIMIT 1",
            (param,),
        ).fetchone()[0]
        raise sqlite3.IntegrityError(
            f"FOREIGN KEY constraint failed: {table}.{column} {missing!r}"
            f" refers to no row of {parent}"
        )


def references(raw: sqlite3.Connection, table: str) -> list[tuple[str, str, str]]:
    """The foreign keys of `table`: (parent table, column, parent column), one per key.

    The schema has none over several columns; one would be refused here, not half checked.
    """
    rows: list[Any] = raw.execute(f"PRAGMA foreign_key_list({table})").fetchall()
    if any(seq for _, seq, *_ in rows):
        raise NotImplementedError(f"{table} has a foreign key over several columns")
    return [(parent, column, key or "rowid") for _, _, parent, column, key, *_ in rows]


def json_array(keys: pl.Series) -> str:
    """`keys` as a JSON array, the one parameter SQLite's `json_each` reads them from."""
    # Polars writes the array: a hundred thousand keys made Python values and then JSON
    # took five times as long. It writes a frame as a list of rows: the one row's one value.
    rows = keys.implode().to_frame("keys").write_json()
    assert rows.startswith(JSON_ROW_START) and rows.endswith(JSON_ROW_END), rows[:40]
    return rows[len(JSON_ROW_START) : -len(JSON_ROW_END)]
