"""The dashboard's sends by day count the messages handed to a provider, read from the send
time index, which a plan's planned and skipped messages stay out of."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from sqlalchemy import Engine, event

from tidings.db import bulk_insert, session_scope
from tidings.reports import overview

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
UTC_TIME = pl.Datetime("us", "UTC")
STATES = ["delivered", "failed", "submitted", "planned", "queued", "skipped", "cancelled"]


def _messages(engine: Engine) -> None:
    stamp = pl.lit(NOW, dtype=UTC_TIME)
    rows = pl.DataFrame({"state": STATES}).with_columns(
        dedupe_key=pl.format("m:{}", "state"),
        phone=pl.lit("+8613900000001"),
        text=pl.lit("hi"),
        kind=pl.lit("marketing"),
        priority=pl.lit(9),
        parts=pl.lit(1),
        cost_cents=pl.lit(5),
        rollout_stage=pl.lit(0),
        provider=pl.lit("simulator"),
        attempts=pl.lit(1),
        send_at=stamp,
        created_at=stamp,
        updated_at=stamp,
    )
    with session_scope(engine) as db_session:
        bulk_insert(db_session, "messages", rows)


def test_a_day_counts_only_the_messages_handed_to_a_provider(engine: Engine) -> None:
    _messages(engine)
    with session_scope(engine) as db_session:
        today = overview.daily(db_session=db_session, now=NOW, days=1)[0]
    assert (today["sent"], today["delivered"], today["cost_cents"]) == (3, 1, 15)


def test_the_sends_are_read_from_the_send_time_index(sqlite_engine: Engine) -> None:
    """SQLite takes a partial index only when the query states its condition word for word;
    otherwise the dashboard would read every message of the store."""
    _messages(sqlite_engine)
    statements: list[tuple[str, object]] = []

    def keep(_conn: object, _cursor: object, sql: str, params: object, *_: object) -> None:
        if "FROM messages" in sql:
            statements.append((sql, params))

    event.listen(sqlite_engine, "before_cursor_execute", keep)
    try:
        with session_scope(sqlite_engine) as db_session:
            overview.daily(db_session=db_session, now=NOW, days=1)
    finally:
        event.remove(sqlite_engine, "before_cursor_execute", keep)
    [(sql, params)] = statements
    with sqlite_engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        plan = " ".join(row[-1] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "ix_messages_send_at_state" in plan
