"""Claims: taken as `submitting` once, priority order, put back, and campaigns not running."""

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
        return claims.take_due(
            db_session=session,
            owner=owner,
            limit=limit,
            lease=LEASE,
            now=clock.now() + timedelta(seconds=later),
        )


def test_a_taken_message_is_submitting_and_never_taken_again(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 10, campaign_id=campaign)
    first = _claim(engine, "worker-a", 6)
    second = _claim(engine, "worker-b", 100)
    assert len(first) == 6
    assert len(second) == 4
    assert not {m.id for m in first} & {m.id for m in second}
    assert states(engine) == {"submitting": 10}
    assert {m.attempts for m in first + second} == {1}
    # Past the lease a message in `submitting` may have reached a handset: only
    # reconciliation, which asks the provider, may settle it; no claim takes it.
    assert _claim(engine, "worker-c", later=LEASE + 1) == []


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


def test_a_pause_stops_every_message_not_yet_taken(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 5, campaign_id=campaign)
    _claim(engine, "worker-a", 2)
    with session_scope(engine) as session:
        service.pause(db_session=session, campaign_id=campaign, reason="delivery below 98%")
    assert _claim(engine, "worker-a") == []
    assert states(engine) == {"queued": 3, "submitting": 2}


def test_put_back_requeues_only_the_own_unsent_messages_and_undoes_the_attempt(
    engine: Engine,
) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 3, campaign_id=campaign)
    taken = _claim(engine, "worker-a")
    later = clock.now() + timedelta(hours=1)
    moves = [(taken[0].id, later), (taken[1].id, None)]
    with session_scope(engine) as session:
        claims.put_back(db_session=session, owner="worker-b", moves=moves, now=clock.now())
    assert states(engine) == {"submitting": 3}
    with session_scope(engine) as session:
        claims.put_back(db_session=session, owner="worker-a", moves=moves, now=clock.now())
    assert states(engine) == {"queued": 2, "submitting": 1}
    [again] = _claim(engine, "worker-b")
    assert (again.id, again.attempts) == (taken[1].id, 1)
    assert [m.id for m in _claim(engine, "worker-b", later=3601)] == [taken[0].id]


def test_cancel_moves_planned_and_queued_messages_but_not_sent_ones(engine: Engine) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, 4, campaign_id=campaign, first_phone=13800000000)
    add_messages(engine, 2, campaign_id=campaign, state="planned", first_phone=13900000000)
    add_messages(engine, 1, campaign_id=campaign, state="delivered", first_phone=13700000000)
    _claim(engine, "worker-a", 2)  # on their way to the provider
    with session_scope(engine) as session:
        cancelled = service.cancel(db_session=session, campaign_id=campaign)
    assert cancelled == 4
    assert states(engine) == {"cancelled": 4, "submitting": 2, "delivered": 1}
    with engine.connect() as connection:
        status = connection.execute(text("SELECT status FROM campaigns")).scalar_one()
    assert status == "cancelled"
