"""The worker's periodic chores: each runs at its turn, a failing one is logged and leaves the
others (and the sending) alone, and a long pass is never started twice at once."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from tidings import clock
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch import chores
from tidings.dispatch.chores import Chore, ChoreRunner, Placement
from tidings.dispatch.worker import Worker
from tidings.inbound import tickets
from tidings.inbound.models import Ticket
from tidings.inbound.service import store_replies
from tidings.members.models import Member
from tidings.providers.base import InboundReply

from .conftest import add_campaign, add_messages, states

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def _broken(engine: Engine, settings: Settings, now: datetime) -> None:
    raise RuntimeError("the store went away")


@pytest.mark.parametrize("broken", ["campaign steps", "ticket breaches"])
def test_a_failing_chore_is_logged_and_the_worker_still_sends_and_does_the_others(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    phone = "+8613800000001"
    with session_scope(engine) as session:
        session.add(Member(phone=phone, name="陈晓燕"))
    with session_scope(engine) as session, clock.frozen(START):
        reply = InboundReply("simulator", phone, "转人工", START, provider_message_id="1")
        store_replies(db_session=session, replies=[reply], now=START, settings=settings)
    # A ticket opened long ago, past its deadline; messages due now.
    add_messages(engine, 30, campaign_id=add_campaign(engine))
    table = [
        replace(chore, work=_broken) if chore.name == broken else chore for chore in chores.CHORES
    ]

    with pytest.MonkeyPatch.context() as patch, caplog.at_level(logging.ERROR):
        patch.setattr(chores, "CHORES", tuple(table))
        asyncio.run(Worker(engine, settings=settings).run(once=True))

    assert states(engine) == {"delivered": 30}
    with session_scope(engine) as session:
        ticket_id = session.scalars(select(Ticket.id)).one()
        flagged = tickets.get(db_session=session, ticket_id=ticket_id).breached
    assert flagged is (broken != "ticket breaches")
    assert f"chore {broken!r} failed" in caplog.text
    assert "the store went away" in caplog.text


def test_each_chore_runs_at_its_turn_and_the_first_round_catches_up(
    engine: Engine, settings: Settings
) -> None:
    ran: list[str] = []

    def note(name: str) -> Chore:
        return Chore(name, lambda _: 60.0, lambda *_: ran.append(name), at_start=name == "early")

    runner = ChoreRunner(engine, settings, now=START, chores=[note("early"), note("later")])

    async def rounds() -> None:
        for seconds in (0, 30, 60, 90, 120):
            await runner.run_due(START + timedelta(seconds=seconds))

    asyncio.run(rounds())
    assert ran == ["early", "early", "later", "early", "later"]


def test_a_long_pass_is_not_started_again_while_it_runs(engine: Engine, settings: Settings) -> None:
    release = threading.Event()
    passes: list[datetime] = []

    def long_pass(engine: Engine, settings: Settings, now: datetime) -> None:
        passes.append(now)
        release.wait(5)

    chore = Chore("long", lambda _: 1.0, long_pass, placement=Placement.BESIDE)
    runner = ChoreRunner(engine, settings, now=START, chores=[chore])

    async def rounds() -> None:
        for seconds in range(5):
            await runner.run_due(START + timedelta(seconds=seconds))
            await asyncio.sleep(0.01)
        release.set()
        await runner.finish()
        await runner.run_due(START + timedelta(seconds=10))
        await runner.finish()

    asyncio.run(rounds())
    assert passes == [START, START + timedelta(seconds=10)]


def test_a_once_run_leaves_date_triggers_and_a_zero_interval_turns_them_off(
    engine: Engine, settings: Settings
) -> None:
    once = ChoreRunner(engine, settings, now=START, once=True)
    assert "trigger scheduler" not in [chore.name for chore in once.chores]
    triggers = next(chore for chore in chores.CHORES if chore.name == "trigger scheduler")
    assert triggers.every(Settings(trigger_interval_seconds=0)) is None
    assert triggers.every(Settings(trigger_interval_seconds=900)) == 900
