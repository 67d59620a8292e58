"""The dashboard's sends by day count the messages handed to a provider, read from the send
time index, which a plan's planned and skipped messages stay out of."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, event

from dispatch.conftest import add_messages  # type: ignore[import-not-found]
from tidings.db import session_scope
from tidings.reports import overview

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
STATES = ["delivered", "failed", "submitted", "planned", "queued", "skipped", "cancelled"]


def _messages(engine: Engine) -> None:
    """One message sent at NOW in each state, each with its own phone."""
    for n, state in enumerate(STATES):
        add_messages(
            engine, 1, campaign_id=None, state=state, send_at=NOW, first_phone=13800000000 + n
        )


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
