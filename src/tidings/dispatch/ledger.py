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
        with raw.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)
