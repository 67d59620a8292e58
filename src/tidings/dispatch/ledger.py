"""Moves messages between states in bulk; every UPDATE is guarded by the allowed sources."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from tidings.bulk import sqlite_values
from tidings.db import is_sqlite, utc_text
from tidings.dispatch.models import MessageState, state_guard

Row = tuple[Any, ...]


def move(
    session: Session,
    *,
    target: MessageState,
    columns: Sequence[str],
    rows: Sequence[Row],
    now: datetime,
    where: str = "",
    where_columns: Sequence[str] = (),
    clear_lease: bool = False,
    extra_assignments: str = "",
) -> None:
    """Sets `columns` from each row (then its id, then `where_columns`, then the values of the
    placeholders in `where`) and moves it to `target`; `extra_assignments` is SQL added to the
    SET clause as it is.

    A row whose message is not in a state allowed to reach `target` is left untouched, so a
    late, repeated or out-of-order event is harmless.
    """
    if not rows:
        return
    sql = _update_sql(target, columns, where, where_columns, clear_lease, extra_assignments)
    _execute_many(session, sql, [(now, *row) for row in rows], id_at=1 + len(columns))


def move_frame(
    session: Session,
    *,
    target: MessageState,
    frame: pl.DataFrame,
    now: datetime,
    where: str = "",
    clear_lease: bool = False,
) -> None:
    """As `move`, with the rows as a frame: each column but the last (`id`) is set by name.

    A frame's columns go to the driver as they are, without a Python loop over the rows:
    SQLite's times are made text by Polars, and PostgreSQL takes each column as one array.
    """
    if frame.is_empty():
        return
    *columns, last = frame.columns
    assert last == "id", "the frame's last column is the message id"
    sql = _update_sql(target, columns, where, (), clear_lease, "")
    if is_sqlite(session):
        as_text = sqlite_values(frame.select(pl.lit(now).alias("updated_at"), *frame.columns))
        raw = session.connection().connection.driver_connection
        assert raw is not None
        raw.executemany(sql, as_text.rows())
        return
    # Rows locked in id order, as `_execute_many` does (see there).
    ordered = frame.sort("id")
    _execute_columns(session, sql, [[now], *(column.to_list() for column in ordered)])


def _update_sql(
    target: MessageState,
    columns: Sequence[str],
    where: str,
    where_columns: Sequence[str],
    clear_lease: bool,
    extra_assignments: str,
) -> str:
    """`UPDATE messages` with ? markers: `updated_at`, then `columns`, the id and
    `where_columns`."""
    assignments = "".join(f", {name} = ?" for name in columns)
    if clear_lease:
        assignments += ", lease_owner = NULL, lease_until = NULL"
    assignments += extra_assignments
    extra = "".join(f" AND {name} = ?" for name in where_columns)
    return (
        f"UPDATE messages SET state = '{target}', updated_at = ?{assignments}"
        f" WHERE id = ? AND {state_guard(target)}{extra}{where}"
    )


def _execute_many(session: Session, sql: str, rows: Sequence[Row], *, id_at: int) -> None:
    """Runs `sql` (qmark style) once per row on the session's connection.

    Rows go straight to the driver rather than through a frame: these are small batches on
    the dispatcher's hot path, where building a frame costs more than the UPDATEs.
    """
    raw = session.connection().connection.driver_connection
    assert raw is not None
    if is_sqlite(session):
        raw.executemany(sql, _as_sqlite_rows(rows))
    else:
        # Rows locked in id order: two workers settling the same messages at once (one from
        # its receipts, one from its reconciler's questions) then wait for each other in
        # turn instead of each holding a row the other wants.
        ordered = sorted(rows, key=itemgetter(id_at))
        _execute_columns(session, sql, [list(column) for column in zip(*ordered, strict=True)])


def _execute_columns(session: Session, sql: str, columns: list[list[Any]]) -> None:
    """Runs `sql` on PostgreSQL once, for the rows whose values `columns` hold (a column of one
    value stands for every row)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    statement, params = _as_one_update(sql, columns)
    with raw.cursor() as cursor:
        cursor.execute(statement, params)


def _as_sqlite_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows with times as SQLite's UTC text, converted column by column: most columns hold
    no time, and most time columns hold the same few moments."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    texts: dict[datetime, str] = {}
    for column in columns:
        sample = next((item for item in column if item is not None), None)
        if isinstance(sample, datetime):
            for i, item in enumerate(column):
                if isinstance(item, datetime):
                    if item not in texts:
                        texts[item] = utc_text(item)
                    column[i] = texts[item]
    return list(zip(*columns, strict=True))


def _sql_type(column: Sequence[Any]) -> str:
    sample = next((value for value in column if value is not None), None)
    if isinstance(sample, datetime):
        return "timestamptz"
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int):
        return "bigint"
    return "text"


def _as_one_update(sql: str, columns: list[list[Any]]) -> tuple[str, dict[str, Any]]:
    """Turns a per-row `UPDATE messages SET ... WHERE ...` with ? markers into one PostgreSQL
    statement over unnest()ed arrays: one round trip for the batch instead of one per row.

    A column with one value for every row (the time of the update, mostly) goes as that one
    value, and values go in binary: dumping arrays of times as text cost more than the UPDATE.
    """
    pieces = sql.split("?")
    assert len(pieces) == len(columns) + 1, "one value per ? marker"
    params: dict[str, Any] = {}
    arrays: list[str] = []
    names: list[str] = []
    for i, column in enumerate(columns):
        kind = _sql_type(column)
        if column.count(column[0]) == len(column):
            params[f"c{i}"] = column[0]
            names.append(f"%(c{i})b::{kind}")
        else:
            params[f"c{i}"] = column
            arrays.append(f"%(c{i})b::{kind}[]")
            names.append(f"v.c{i}")
    text = pieces[0] + "".join(name + piece for name, piece in zip(names, pieces[1:], strict=True))
    head, _, tail = text.partition(" WHERE ")
    # Join by primary key, never by the state index: with many messages awaiting receipts,
    # a plan that starts from "every submitted message" reads them all for each batch.
    tail = tail.replace(" state IN (", " (state || '') IN (").replace(
        " state = '", " (state || '') = '"
    )
    if not arrays:
        return f"{head} WHERE {tail}", params
    labels = ", ".join(name[2:] for name in names if name.startswith("v."))
    return f"{head} FROM unnest({', '.join(arrays)}) AS v({labels}) WHERE {tail}", params
