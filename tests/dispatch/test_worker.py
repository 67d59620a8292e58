"""The worker sends each due message once, retries throttling, fails refusals with the
provider's code, respects the send window at send time, and settles what a crash left."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from tidings import clock
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch import outcomes
from tidings.dispatch.reconcile import reconcile
from tidings.dispatch.worker import Worker
from tidings.inbound import tickets
from tidings.inbound.models import Ticket
from tidings.inbound.service import store_replies
from tidings.members.models import Member
from tidings.providers.base import InboundReply, OutgoingMessage, SendResult
from tidings.providers.simulator import INVALID_NUMBER_CODE, THROTTLE_CODE, SimulatorProvider

from .conftest import add_campaign, add_messages, inbox_lines, states


def _run(engine: Engine, settings: Settings, **options: object) -> dict[str, int]:
    worker = Worker(engine, settings=settings, **options)  # type: ignore[arg-type]
    return asyncio.run(worker.run(once=True)).as_dict()


def test_every_due_message_reaches_its_handset_once_and_is_delivered(
    engine: Engine, settings: Settings
) -> None:
    campaign = add_campaign(engine)
    ids = add_messages(engine, 1200, campaign_id=campaign)
    _run(engine, settings, concurrency=3)
    received = Counter(line["message_id"] for line in inbox_lines(settings.simulator_inbox))
    assert set(received) == set(ids)
    assert max(received.values()) == 1
    assert states(engine) == {"delivered": 1200}


def test_a_refused_number_fails_with_the_providers_code(engine: Engine, settings: Settings) -> None:
    settings.simulator_failure_rate = 0.3
    campaign = add_campaign(engine)
    add_messages(engine, 200, campaign_id=campaign)
    _run(engine, settings)
    with engine.connect() as connection:
        failed = connection.execute(
            text("SELECT error_code, attempts FROM messages WHERE state = 'failed'")
        ).all()
    assert 20 < len(failed) < 100
    assert {row[0] for row in failed} == {INVALID_NUMBER_CODE}
    assert {row[1] for row in failed} == {1}
    assert states(engine)["delivered"] == 200 - len(failed)


def test_throttled_messages_are_retried_until_they_go(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcomes, "BACKOFF_BASE", 0.05)
    settings.simulator_throttle_share = 0.3
    campaign = add_campaign(engine)
    add_messages(engine, 300, campaign_id=campaign)
    _run(engine, settings)
    assert states(engine) == {"delivered": 300}
    assert len(inbox_lines(settings.simulator_inbox)) == 300
    with engine.connect() as connection:
        retried = connection.execute(
            text("SELECT COUNT(*) FROM messages WHERE attempts > 1")
        ).scalar_one()
    assert retried > 50


def test_a_message_throttled_past_the_limit_fails_and_says_why(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcomes, "BACKOFF_BASE", 0.05)
    settings.simulator_throttle_share = 1.0
    settings.dispatch_max_attempts = 3
    campaign = add_campaign(engine)
    add_messages(engine, 20, campaign_id=campaign)
    _run(engine, settings)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT state, error_code, attempts FROM messages")).all()
    assert set(rows) == {("failed", f"retries_exhausted:{THROTTLE_CODE}", 3)}
    assert inbox_lines(settings.simulator_inbox) == []


def test_backoff_grows_and_is_jittered() -> None:
    first = [outcomes.backoff(1) for _ in range(50)]
    fourth = [outcomes.backoff(4) for _ in range(50)]
    assert max(first) <= outcomes.BACKOFF_BASE < min(fourth)
    assert len(set(fourth)) > 1
    assert outcomes.backoff(30) <= outcomes.BACKOFF_CAP
    assert outcomes.backoff(1, floor=60.0) == 60.0


# 19:59 and 20:01 in Shanghai (UTC+8) on the same evening.
EVENING_DUE = datetime.fromisoformat("2026-11-24T11:59:00+00:00")
EVENING_CLAIM = datetime.fromisoformat("2026-11-24T12:01:00+00:00")
NEXT_MORNING = datetime.fromisoformat("2026-11-25T00:00:00+00:00")  # 08:00 in Shanghai


def _windowed(settings: Settings) -> Settings:
    settings.send_window = "08:00-20:00"
    settings.quiet_hours = "22:00-08:00"
    settings.simulator_receipt_delay = "0"  # the clock stands still: receipts come at once
    return settings


def test_a_message_due_at_1959_and_claimed_at_2001_waits_for_morning(
    engine: Engine, settings: Settings
) -> None:
    campaign = add_campaign(engine)
    [marketing] = add_messages(engine, 1, campaign_id=campaign, send_at=EVENING_DUE)
    [receipt] = add_messages(
        engine,
        1,
        campaign_id=None,
        kind="transactional",
        priority=1,
        send_at=EVENING_DUE,
        first_phone=13900000000,
    )
    with clock.frozen(EVENING_CLAIM):
        _run(engine, _windowed(settings))
    with engine.connect() as connection:
        rows = {i: s for i, s in connection.execute(text("SELECT id, state FROM messages"))}
        send_at = connection.execute(
            text("SELECT send_at FROM messages WHERE id = :id"), {"id": marketing}
        ).scalar_one()
    assert rows == {marketing: "queued", receipt: "delivered"}
    assert str(send_at).startswith(NEXT_MORNING.strftime("%Y-%m-%d %H:%M"))
    assert [line["message_id"] for line in inbox_lines(settings.simulator_inbox)] == [receipt]


def test_a_message_that_would_expire_before_morning_expires_unsent(
    engine: Engine, settings: Settings
) -> None:
    campaign = add_campaign(engine)
    add_messages(
        engine,
        3,
        campaign_id=campaign,
        send_at=EVENING_DUE,
        expires_at=EVENING_DUE + timedelta(hours=3),
    )
    with clock.frozen(EVENING_CLAIM):
        _run(engine, _windowed(settings))
    with engine.connect() as connection:
        codes = connection.execute(text("SELECT DISTINCT error_code FROM messages")).scalars()
        assert list(codes) == [outcomes.EXPIRED_BEFORE_SEND]
    assert states(engine) == {"expired": 3}
    assert inbox_lines(settings.simulator_inbox) == []


def _minutes_ago(engine: Engine) -> object:
    """Five minutes ago, as the store's own SQL takes a time."""
    past = clock.now() - timedelta(minutes=5)
    return past.strftime("%Y-%m-%d %H:%M:%S.%f") if engine.dialect.name == "sqlite" else past


def _strand_in_submitting(engine: Engine, ids: list[int]) -> None:
    """Leaves messages as a killed worker would: submitting, with a lease run out."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE messages SET state = 'submitting', attempts = 1, lease_owner = 'dead',"
                " lease_until = :past"
            ),
            {"past": _minutes_ago(engine)},
        )


def test_a_crash_is_reconciled_from_the_providers_query(
    engine: Engine, settings: Settings, simulator: SimulatorProvider
) -> None:
    campaign = add_campaign(engine)
    ids = add_messages(engine, 10, campaign_id=campaign)
    _strand_in_submitting(engine, ids)
    # The first four reached their handsets before the worker died.
    asyncio.run(simulator.send_batch([OutgoingMessage(i, "+8613800000000", "hi") for i in ids[:4]]))
    asyncio.run(
        reconcile(
            engine=engine, providers={"simulator": simulator}, now=clock.now(), receipt_timeout=3600
        )
    )
    with engine.connect() as connection:
        rows = {i: s for i, s in connection.execute(text("SELECT id, state FROM messages"))}
    assert {rows[i] for i in ids[:4]} <= {"submitted", "delivered"}
    assert {rows[i] for i in ids[4:]} == {"queued"}
    _run(engine, settings)
    received = Counter(line["message_id"] for line in inbox_lines(settings.simulator_inbox))
    assert set(received) == set(ids) and max(received.values()) == 1


def test_a_run_settles_messages_whose_receipts_died_with_an_earlier_worker(
    engine: Engine, settings: Settings, simulator: SimulatorProvider
) -> None:
    campaign = add_campaign(engine)
    ids = add_messages(engine, 10, campaign_id=campaign)
    results = asyncio.run(
        simulator.send_batch([OutgoingMessage(i, "+8613800000000", "hi") for i in ids])
    )
    # The worker that handed them over recorded it, then died before their receipts came.
    past = _minutes_ago(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE messages SET state = 'submitted', attempts = 1, submitted_at = :past,"
                " provider_message_id = :taken WHERE id = :id"
            ),
            [
                {"past": past, "taken": result.provider_message_id, "id": result.message_id}
                for result in results
            ],
        )
    _run(engine, settings)
    assert states(engine) == {"delivered": 10}
    assert len(inbox_lines(settings.simulator_inbox)) == 10


def test_a_line_cut_short_by_a_killed_worker_hides_no_later_message(
    engine: Engine, settings: Settings, simulator: SimulatorProvider
) -> None:
    campaign = add_campaign(engine)
    ids = add_messages(engine, 3, campaign_id=campaign)
    asyncio.run(simulator.send_batch([OutgoingMessage(ids[0], "+8613800000000", "hi")]))
    # The worker was killed in the middle of writing: half a line, with no end.
    inbox = settings.simulator_inbox
    assert inbox is not None
    whole = inbox.read_bytes()
    inbox.write_bytes(whole[: len(whole) // 2])
    later = [OutgoingMessage(i, "+8613800000000", "hi") for i in ids[1:]]
    asyncio.run(SimulatorProvider.from_settings(settings).send_batch(later))
    # A worker started afterwards asks about all three: the cut one never arrived readable.
    found = asyncio.run(SimulatorProvider.from_settings(settings).query(ids))
    assert sorted(result.message_id for result in found) == ids[1:]
    assert [line["message_id"] for line in inbox_lines(inbox)] == ids[1:]


class _NoQuery:
    """A provider without a query API."""

    name = "blind"
    max_batch = 100


def test_without_a_query_api_a_stranded_message_is_unknown_and_never_resent(
    engine: Engine, settings: Settings
) -> None:
    campaign = add_campaign(engine)
    ids = add_messages(engine, 5, campaign_id=campaign)
    with engine.begin() as connection:
        connection.execute(text("UPDATE messages SET provider = 'blind'"))
    _strand_in_submitting(engine, ids)
    asyncio.run(
        reconcile(
            engine=engine,
            providers={"blind": _NoQuery()},  # type: ignore[dict-item]
            now=clock.now(),
            receipt_timeout=3600,
        )
    )
    assert states(engine) == {"unknown": 5}
    _run(engine, settings)
    assert states(engine) == {"unknown": 5}
    assert inbox_lines(settings.simulator_inbox) == []


class _SlowOnce(SimulatorProvider):
    """The simulator, but its first call hangs past the worker's budget after handing over."""

    hung = False

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = await super().send_batch(messages)
        if not self.hung:
            self.hung = True
            await asyncio.sleep(60)
        return results


def test_a_call_that_breaks_off_is_settled_and_the_run_still_ends(
    engine: Engine, settings: Settings
) -> None:
    settings.dispatch_lease_seconds = 1.0
    campaign = add_campaign(engine)
    ids = add_messages(engine, 50, campaign_id=campaign)
    slow = _SlowOnce.from_settings(settings)
    _run(engine, settings, providers={"simulator": slow})
    received = Counter(line["message_id"] for line in inbox_lines(settings.simulator_inbox))
    assert set(received) == set(ids)
    assert max(received.values()) == 1
    assert states(engine) == {"delivered": 50}


def test_a_ticket_past_its_first_response_deadline_is_flagged_by_the_worker(
    engine: Engine, settings: Settings
) -> None:
    # Monday 23 November 2026, 14:00 in Shanghai: opening hours, a 5-minute deadline.
    opened = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    phone = "+8613800000001"
    with session_scope(engine) as session:
        session.add(Member(phone=phone, name="陈晓燕"))
    with session_scope(engine) as session, clock.frozen(opened):
        store_replies(
            db_session=session,
            replies=[InboundReply("simulator", phone, "转人工", opened, provider_message_id="1")],
            now=opened,
            settings=settings,
        )
        ticket_id = session.scalars(select(Ticket.id)).one()
        assert not tickets.get(db_session=session, ticket_id=ticket_id).breached
    with clock.frozen(opened + timedelta(minutes=6)):
        _run(engine, settings)
    with session_scope(engine) as session:
        assert tickets.get(db_session=session, ticket_id=ticket_id).breached
        kinds = [event.kind for event in tickets.history(db_session=session, ticket_id=ticket_id)]
    assert kinds == ["opened", "breach"]
