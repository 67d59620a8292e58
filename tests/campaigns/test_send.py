"""Sending: pause and cancel stop queued messages at once; rollout stages go only while healthy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine

from tidings.campaigns import service
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker

from .conftest import add_members, inbox_phones, message_rows, midday_zone


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A quick simulator that delivers everything."""
    return Settings(
        simulator_inbox=tmp_path / "inbox.jsonl",
        simulator_receipt_delay="0-0.02",
        simulator_failure_rate=0.0,
        simulator_delivery_rate=1.0,
        simulator_reply_rate=0.0,
        dispatch_lease_seconds=5.0,
        dispatch_receipt_timeout=2.0,
    )


def planned_campaign(engine: Engine, members: int, **fields: object) -> int:
    add_members(engine, members, timezone=midday_zone())
    values: dict[str, object] = {
        "name": "周末特惠",
        "rule": "consent == true",
        "variants": [VariantCreate(template="{surname}，周末水果8折")],
    }
    values.update(fields)
    with session_scope(engine) as session:
        campaign = service.create(db_session=session, spec=CampaignCreate(**values))  # type: ignore[arg-type]
        service.plan(db_session=session, campaign_id=campaign.id)
        return campaign.id


def run_worker(engine: Engine, settings: Settings) -> None:
    asyncio.run(Worker(engine, settings=settings).run(once=True))


def status(engine: Engine, campaign_id: int) -> dict[str, object]:
    with session_scope(engine) as session:
        return service.status(db_session=session, campaign_id=campaign_id)


def test_a_paused_campaign_sends_nothing_more_until_resumed(
    engine: Engine, settings: Settings
) -> None:
    campaign = planned_campaign(engine, 120)
    with session_scope(engine) as session:
        assert service.send(db_session=session, campaign_id=campaign) == 120
        service.pause(db_session=session, campaign_id=campaign)
    run_worker(engine, settings)
    assert inbox_phones(settings.simulator_inbox) == {}
    assert status(engine, campaign)["messages"] == {"queued": 120}
    with session_scope(engine) as session:
        service.resume(db_session=session, campaign_id=campaign)
    run_worker(engine, settings)
    received = inbox_phones(settings.simulator_inbox)
    assert len(received) == 120 and set(received.values()) == {1}


def test_a_cancelled_campaign_cancels_its_queued_messages(
    engine: Engine, settings: Settings
) -> None:
    campaign = planned_campaign(engine, 50)
    with session_scope(engine) as session:
        service.send(db_session=session, campaign_id=campaign)
        assert service.cancel(db_session=session, campaign_id=campaign) == 50
    run_worker(engine, settings)
    assert inbox_phones(settings.simulator_inbox) == {}
    result = status(engine, campaign)
    assert result["status"] == "cancelled"
    assert result["messages"] == {"cancelled": 50}


def test_a_healthy_rollout_releases_every_stage(engine: Engine, settings: Settings) -> None:
    campaign = planned_campaign(engine, 300, rollout=[10, 50, 100])
    stages = message_rows(engine, campaign)["rollout_stage"].value_counts()
    assert set(stages["rollout_stage"].to_list()) == {0, 1, 2}
    with session_scope(engine) as session:
        first = service.send(db_session=session, campaign_id=campaign)
    assert 10 < first < 60  # about 10% of 300
    run_worker(engine, settings)
    result = status(engine, campaign)
    assert result["messages"] == {"delivered": 300}
    assert result["rollout_stage"] == 2
    assert [check["passed"] for check in result["rollout_report"]] == [True, True]
    assert len(inbox_phones(settings.simulator_inbox)) == 300


def test_a_failing_gate_pauses_the_campaign_and_says_why(
    engine: Engine, settings: Settings
) -> None:
    settings.simulator_delivery_rate = 0.5
    campaign = planned_campaign(engine, 300, rollout=[20, 100])
    first_stage = message_rows(engine, campaign).filter(pl.col("rollout_stage") == 0).height
    with session_scope(engine) as session:
        service.send(db_session=session, campaign_id=campaign)
    run_worker(engine, settings)
    result = status(engine, campaign)
    assert result["status"] == "paused"
    assert "rollout stage 1 of 2 (20%) failed its health gates: delivery" in str(
        result["status_reason"]
    )
    assert "below the 98.0% gate" in str(result["status_reason"])
    assert sum(inbox_phones(settings.simulator_inbox).values()) == first_stage
    assert result["messages"]["planned"] == 300 - first_stage  # type: ignore[index]
    # The operator accepts the numbers: resuming releases the next stage.
    with session_scope(engine) as session:
        released = service.resume(db_session=session, campaign_id=campaign)
    assert released == 300 - first_stage
    run_worker(engine, settings)
    assert sum(inbox_phones(settings.simulator_inbox).values()) == 300
    assert status(engine, campaign)["rollout_report"][-1]["overridden"] is True  # type: ignore[index]
