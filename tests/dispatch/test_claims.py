"""Claims: leases, lease expiry, priority order, and campaigns that are not running."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text

from tidings import clock
from tidings.campaigns.models import CampaignStatus
from tidings.db import session_scope
from tidings.dispatch import claims, service
from tidings.dispatch.claims import ClaimedMessage

from .conftest import add_campaign, add_messages, states

LEASE = 30.0  # seconds


def _claim(
    engine: Engine, owner: str, limit: int = 100, *, later: float = 0.0
) -> list[ClaimedMessage]:
    with session_scope(engine) as session:
        return claims.claim_due(
            db_session=session,
            owner=owner,
            limit=limit,
            lease=LEASE,
            now=clock.now() + timedelta(seconds=later),
        )


def test_a_leased_message_is_not_claimed_again_until_its_lease_runs_out(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 10, campaign_id=campaign)
    first = _claim(engine, "worker-a", 6)
    second = _claim(engine, "worker-b", 100)
    assert len(first) == 6
    assert len(second) == 4
    assert not {m.id for m in first} & {m.id for m in second}
    assert _claim(engine, "worker-c") == []
    taken_over = _claim(engine, "worker-c", later=LEASE + 1)
    assert {m.id for m in taken_over} == {m.id for m in first} | {m.id for m in second}


def test_urgent_messages_are_claimed_first_then_the_oldest(engine: Engine) -> None:
    campaign = add_campaign(engine)
    now = clock.now()
    late = add_messages(
        engine,
        3,
        campaign_id=campaign,
        priority=9,
        send_at=now - timedelta(minutes=1),
        first_phone=13900000000,
    )
    early = add_messages(
        engine,
        3,
        campaign_id=campaign,
        priority=9,
        send_at=now - timedelta(minutes=30),
        first_phone=13700000000,
    )
    urgent = add_messages(
        engine, 2, campaign_id=None, priority=1, kind="transactional", first_phone=13600000000
    )
    claimed = _claim(engine, "worker-a", 5)
    assert {m.id for m in claimed} == set(urgent) | set(early)
    assert not set(late) & {m.id for m in claimed}


def test_messages_not_yet_due_are_not_claimed(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 3, campaign_id=campaign, send_at=clock.now() + timedelta(hours=1))
    assert _claim(engine, "worker-a") == []


def test_messages_of_a_paused_or_draft_campaign_are_not_claimed(engine: Engine) -> None:
    paused = add_campaign(engine, status=CampaignStatus.PAUSED)
    draft = add_campaign(engine, status=CampaignStatus.DRAFT)
    add_messages(engine, 3, campaign_id=paused, first_phone=13800000000)
    add_messages(engine, 3, campaign_id=draft, first_phone=13900000000)
    assert _claim(engine, "worker-a") == []
    with session_scope(engine) as session:
        service.resume(db_session=session, campaign_id=paused)
    assert len(_claim(engine, "worker-a")) == 3


def test_a_pause_after_the_claim_stops_the_send(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 5, campaign_id=campaign)
    claimed = _claim(engine, "worker-a")
    with session_scope(engine) as session:
        service.pause(db_session=session, campaign_id=campaign, reason="delivery below 98%")
    with session_scope(engine) as session:
        taken = claims.mark_submitting(
            db_session=session,
            owner="worker-a",
            ids=[m.id for m in claimed],
            lease=LEASE,
            now=clock.now(),
        )
    assert taken == set()
    assert states(engine) == {"queued": 5}


def test_a_worker_cannot_submit_a_message_another_worker_took_over(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 2, campaign_id=campaign)
    stale = _claim(engine, "worker-a")
    _claim(engine, "worker-b", later=LEASE + 1)
    with session_scope(engine) as session:
        taken = claims.mark_submitting(
            db_session=session,
            owner="worker-a",
            ids=[m.id for m in stale],
            lease=LEASE,
            now=clock.now(),
        )
    assert taken == set()


def test_cancel_moves_planned_and_queued_messages_but_not_sent_ones(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 4, campaign_id=campaign, first_phone=13800000000)
    add_messages(engine, 2, campaign_id=campaign, state="planned", first_phone=13900000000)
    add_messages(engine, 1, campaign_id=campaign, state="delivered", first_phone=13700000000)
    _claim(engine, "worker-a", 2)
    with session_scope(engine) as session:
        cancelled = service.cancel(db_session=session, campaign_id=campaign)
    assert cancelled == 6
    assert states(engine) == {"cancelled": 6, "delivered": 1}
    with engine.connect() as connection:
        status = connection.execute(text("SELECT status FROM campaigns")).scalar_one()
    assert status == "cancelled"
