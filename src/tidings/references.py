"""Checking the references of rows written in bulk to SQLite, a frame at a time.

SQLite enforcing foreign keys looks the parent of every reference up as it writes each row:
a B-tree search per key per row, in the order the rows come. For a million members' orders
that search cost more than writing the orders. A bulk store may instead have SQLite leave
them (`tidings.bulk.bulk_store(..., references_per_frame=True)`): each frame it appends is then
checked here, with one query per foreign key over the frame's distinct keys in order, and a
frame with a key that refers to nothing raises before any of its rows are written.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import polars as pl

JSON_ROW_START, JSON_ROW_END = '[{"keys":', "}]"  # around the keys in `json_array`'s frame


@dataclass(frozen=True)
class Reference:
    """One foreign key of a table: its `columns` refer to the parent's `keys`, in order."""

    parent: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]


def check_frame(
    raw: sqlite3.Connection, table: str, frame: pl.DataFrame, found: FoundKeys | None = None
) -> None:
    """Raises `sqlite3.IntegrityError` when the values of `frame` in a foreign key of `table`
    have no parent row (a row with a null in the key refers to nothing and passes). Keys in
    `found` are not looked up again; single-column keys looked up are added to it."""
    for reference in references(raw, table):
        if all(column in frame.columns for column in reference.columns):
            _check(raw, table, reference, frame.select(reference.columns), found)


def _check(
    raw: sqlite3.Connection,
    table: str,
    reference: Reference,
    values: pl.DataFrame,
    found: FoundKeys | None,
) -> None:
    keys = values.drop_nulls().unique().sort(values.columns)  # in order: the parent's pages once
    single = values.width == 1
    if single and found is not None:
        keys = found.unseen(raw, reference.parent, keys.to_series()).to_frame()
    if keys.is_empty():
        return
    if single:  # an array of the values, each row's `k.value`
        param, values_sql = json_array(keys.to_series()), ["k.value"]
    else:  # an array of objects, one per key
        param, values_sql = keys.write_json(), [f"k.value ->> '$.{c}'" for c in keys.columns]
    on = " AND ".join(
        f"p.{key} = {value}" for key, value in zip(reference.keys, values_sql, strict=True)
    )
    # A parent key is unique: every key is found when the join has a row per key. (It
    # costs SQLite half what asking for a key that is not found does.)
    count = raw.execute(
        f"SELECT COUNT(*) FROM json_each(?) AS k JOIN {reference.parent} p ON {on}", (param,)
    ).fetchone()[0]
    if count == keys.height:
        if single and found is not None:
            found.add(raw, reference.parent, keys.to_series())
        return
    missing = raw.execute(
        f"SELECT k.value FROM json_each(?) AS k"
        f" WHERE NOT EXISTS (SELECT 1 FROM {reference.parent} p WHERE {on}) LIMIT 1",
        (param,),
    ).fetchone()[0]
    raise sqlite3.IntegrityError(
        f"FOREIGN KEY constraint failed: {table}.{', '.join(reference.columns)} {missing!r}"
        f" refers to no row of {reference.parent}"
    )


class FoundKeys:
    """The integer keys a store has found in a table, or written to it, so that frame after
    frame of an import does not look the same members up again.

    What it holds is true while the store's connection is the one it was filled on and no
    other connection has committed to the file since (SQLite's `data_version`; another
    might have deleted a row), and until the store rolls back (`clear`): rows it wrote are
    then gone. Anything else empties it first. Keys are kept sorted per table.
    """

    def __init__(self) -> None:
        self._keys: dict[str, pl.Series] = {}
        self._stamp: tuple[int, int] | None = None

    def clear(self) -> None:
        """Forgets every key (the store rolled back what it wrote)."""
        self._keys.clear()

    def unseen(self, raw: sqlite3.Connection, table: str, keys: pl.Series) -> pl.Series:
        """The keys of `keys` (sorted, distinct) not known to be in `table`."""
        known = self._current(raw).get(table)
        if known is None or not keys.dtype.is_integer():
            return keys
        keys = keys.cast(pl.Int64)
        first, last = known[0], known[-1]
        if last - first + 1 == known.len():  # every id from first to last, as new rows' are
            return keys.filter((keys < first) | (keys > last))
        at = known.search_sorted(keys).clip(upper_bound=known.len() - 1)
        return keys.filter(known.gather(at) != keys)

    def add(self, raw: sqlite3.Connection, table: str, keys: pl.Series) -> None:
        """Notes `keys` (sorted, distinct, none known yet) as rows of `table`, found or
        written on `raw`."""
        if not keys.dtype.is_integer() or keys.is_empty():
            return
        keys = keys.cast(pl.Int64)
        known = self._current(raw).get(table)
        if known is None:
            merged = keys
        elif known[-1] < keys[0]:  # new rows' ids, after every known one
            merged = known.append(keys).set_sorted()
        else:
            merged = known.append(keys).sort()
        self._keys[table] = merged

    def _current(self, raw: sqlite3.Connection) -> dict[str, pl.Series]:
        """The keys, emptied first when `raw` is another connection or another connection
        has committed since."""
        stamp = file_version(raw)
        if stamp != self._stamp:
            self._keys.clear()
            self._stamp = stamp
        return self._keys


def file_version(raw: sqlite3.Connection) -> tuple[int, int]:
    """The connection, and how many commits of other connections to the file it has seen
    (SQLite's `data_version`, fixed for the length of a transaction): the same in two
    transactions when nobody else wrote to the file in between."""
    return id(raw), int(raw.execute("PRAGMA data_version").fetchone()[0])


def references(raw: sqlite3.Connection, table: str) -> list[Reference]:
    """The foreign keys of `table`, each over one column or several."""
    rows: list[Any] = raw.execute(f"PRAGMA foreign_key_list({table})").fetchall()
    parts: dict[int, list[tuple[int, str, str, str | None]]] = {}
    for number, seq, parent, column, key, *_ in rows:
        parts.setdefault(number, []).append((seq, parent, column, key))
    found = []
    for columns in parts.values():
        columns.sort()
        parent = columns[0][1]
        keys = tuple(key for _, _, _, key in columns if key is not None)
        found.append(
            Reference(
                parent=parent,
                columns=tuple(column for _, _, column, _ in columns),
                keys=keys if len(keys) == len(columns) else _primary_key(raw, parent),
            )
        )
    return found


def _primary_key(raw: sqlite3.Connection, table: str) -> tuple[str, ...]:
    """The columns of `table`'s primary key in order (its rowid when it declares none)."""
    info: list[Any] = raw.execute(f"PRAGMA table_info({table})").fetchall()
    declared = sorted((pk, name) for _, name, _, _, _, pk in info if pk)
    return tuple(name for _, name in declared) or ("rowid",)


def json_array(keys: pl.Series) -> str:
    """`keys` as a JSON array, the one parameter SQLite's `json_each` reads them from."""
    # Polars writes the array: a hundred thousand keys made Python values and then JSON
    # took five times as long. It writes a frame as a list of rows: the one row's one value.
    rows = keys.implode().to_frame("keys").write_json()
    assert rows.startswith(JSON_ROW_START) and rows.endswith(JSON_ROW_END), rows[:40]
    return rows[len(JSON_ROW_START) : -len(JSON_ROW_END)]
