"""Moves messages between states in bulk; every UPDATE is guarded by the allowed sources."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

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
) -> None:
    """Sets `columns` from each row (then its id, then `where_columns`, then the values of the
    placeholders in `where`) and moves it to `target`.

    A row whose message is not in a state allowed to reach `target` is left untouched, so a
    late, repeated or out-of-order event is harmless.
    """
    if not rows:
        return
    assignments = "".join(f", {name} = ?" for name in columns)
    if clear_lease:
        assignments += ", lease_owner = NULL, lease_until = NULL"
    extra = "".join(f" AND {name} = ?" for name in where_columns)
    sql = (
        f"UPDATE messages SET state = '{target}', updated_at = ?{assignments}"
        f" WHERE id = ? AND {state_guard(target)}{extra}{where}"
    )
    _execute_many(session, sql, [(now, *row) for row in rows])


def reschedule(
    session: Session, *, owner: str, moves: Sequence[tuple[datetime, int]], now: datetime
) -> None:
    """Releases `owner`'s claimed, still queued messages to go at a later time each."""
    if not moves:
        return
    sql = (
        "UPDATE messages SET updated_at = ?, send_at = ?, lease_owner = NULL, lease_until = NULL"
        " WHERE id = ? AND state = 'queued' AND lease_owner = ?"
    )
    rows = [(now, send_at, message_id, owner) for send_at, message_id in moves]
    _execute_many(session, sql, rows)


def _execute_many(session: Session, sql: str, rows: Sequence[Row]) -> None:
    """Runs `sql` (qmark style) once per row on the session's connection.

    Rows go straight to the driver rather than through a frame: these are small batches on
    the dispatcher's hot path, where building a frame costs more than the UPDATEs.
    """
    raw = session.connection().connection.driver_connection
    assert raw is not None
    if is_sqlite(session):
        texts: dict[datetime, str] = {}  # most rows share a few times: format each once

        def value(item: Any) -> Any:
            if isinstance(item, datetime):
                if item not in texts:
                    texts[item] = utc_text(item)
                return texts[item]
            return item

        raw.executemany(sql, [tuple(value(v) for v in row) for row in rows])
    else:
        statement, arrays = _as_one_update(sql, rows)
        with raw.cursor() as cursor:
            cursor.execute(statement, arrays)


def _array_type(column: Sequence[Any]) -> str:
    sample = next((value for value in column if value is not None), None)
    if isinstance(sample, datetime):
        return "timestamptz[]"
    if isinstance(sample, bool):
        return "boolean[]"
    if isinstance(sample, int):
        return "bigint[]"
    return "text[]"


def _as_one_update(sql: str, rows: Sequence[Row]) -> tuple[str, list[list[Any]]]:
    """Turns a per-row `UPDATE messages SET ... WHERE ...` with ? markers into one PostgreSQL
    statement over unnest()ed arrays: one round trip for the batch instead of one per row."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    pieces = sql.split("?")
    assert len(pieces) == len(columns) + 1, "one value per ? marker"
    text = pieces[0] + "".join(f"v.c{i}{piece}" for i, piece in enumerate(pieces[1:]))
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    arrays = ", ".join(f"%s::{_array_type(column)}" for column in columns)
    head, _, tail = text.partition(" WHERE ")
    # Join by primary key, never by the state index: with many messages awaiting receipts,
    # a plan that starts from "every submitted message" reads them all for each batch.
    tail = tail.replace(" state IN (", " (state || '') IN (").replace(
        " state = '", " (state || '') = '"
    )
    return f"{head} FROM unnest({arrays}) AS v({names}) WHERE {tail}", columns
