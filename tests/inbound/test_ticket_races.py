"""Two callbacks for one phone handled at the same time open one ticket, not two: the agent
sees both messages in one conversation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from tidings.config import Settings
from tidings.db import session_scope
from tidings.inbound import tickets
from tidings.inbound.models import Ticket, TicketEvent

# Monday 23 November 2026, 14:00 in Shanghai.
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
PHONE = "+8613800000001"
SETTINGS = Settings()


def draft(subject: str) -> tickets.TicketDraft:
    return tickets.TicketDraft(
        category="question", phone=PHONE, provider="simulator", subject=subject, opened_at=NOW
    )


def conversation(engine: Engine) -> list[tuple[int, str, str | None]]:
    """Each ticket's events as (ticket id, kind, text)."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(TicketEvent.ticket_id, TicketEvent.kind, TicketEvent.text).order_by(
                TicketEvent.id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_callback_that_missed_the_other_ones_ticket_joins_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(engine) as session:
        (first,) = tickets.open_tickets(
            db_session=session, drafts=[draft("在吗")], now=NOW, settings=SETTINGS
        )
    # The second callback read the phone's tickets before the first one's was committed.
    real = tickets._unsolved_by_phone
    stale = [True]

    def read(*args: object) -> dict[str, int]:
        return {} if stale and stale.pop() else real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(tickets, "_unsolved_by_phone", read)
    with session_scope(engine) as session:
        (second,) = tickets.open_tickets(
            db_session=session, drafts=[draft("怎么没人回")], now=NOW, settings=SETTINGS
        )
    assert second == first
    assert conversation(engine) == [(first, "opened", "在吗"), (first, "reply", "怎么没人回")]


def test_a_solved_ticket_does_not_stop_a_new_one(engine: Engine) -> None:
    with session_scope(engine) as session:
        (first,) = tickets.open_tickets(
            db_session=session, drafts=[draft("在吗")], now=NOW, settings=SETTINGS
        )
        session.get_one(Ticket, first).status = tickets.TicketStatus.SOLVED
    with session_scope(engine) as session:
        (second,) = tickets.open_tickets(
            db_session=session, drafts=[draft("又有问题")], now=NOW, settings=SETTINGS
        )
    assert second != first


def test_two_simultaneous_callbacks_open_one_ticket(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: callbacks take turns (see inbound/hooks.py)")
    opened: list[int] = []
    with session_scope(engine) as first:
        opened += tickets.open_tickets(
            db_session=first, drafts=[draft("在吗")], now=NOW, settings=SETTINGS
        )

        def second_callback() -> None:
            with session_scope(engine) as second:
                opened.extend(
                    tickets.open_tickets(
                        db_session=second, drafts=[draft("有人吗")], now=NOW, settings=SETTINGS
                    )
                )

        # The second callback starts while the first has not committed: it sees no ticket.
        other = threading.Thread(target=second_callback)
        other.start()
        other.join(timeout=0.5)
        assert other.is_alive()  # waiting on the first one's ticket
    other.join(timeout=10)
    assert len(opened) == 2 and len(set(opened)) == 1  # both handled, one ticket
    with session_scope(engine) as session:
        assert session.scalars(select(Ticket.id)).all() == opened[:1]
