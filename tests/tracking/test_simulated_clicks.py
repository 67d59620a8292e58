"""The simulator's members open their messages' short links: the clicks are recorded as
people's, so demo campaigns have clicks to report."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine

from campaigns.conftest import add_members, midday_zone
from tidings.campaigns import service as campaigns
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker
from tidings.tracking import service

from .conftest import create_campaign, plan_campaign


@pytest.mark.usefixtures("short_links")
@pytest.mark.parametrize("click_rate", [1.0, 0.0])
def test_simulated_members_click_their_links(
    engine: Engine, tmp_path: Path, click_rate: float
) -> None:
    add_members(engine, 8, timezone=midday_zone())
    campaign = create_campaign(engine)
    plan_campaign(engine, campaign)
    with session_scope(engine) as session:
        campaigns.send(db_session=session, campaign_id=campaign)
    settings = Settings(
        simulator_inbox=tmp_path / "inbox.jsonl",
        simulator_receipt_delay="0-0.02",
        simulator_failure_rate=0.0,
        simulator_delivery_rate=1.0,
        simulator_reply_rate=0.0,
        simulator_click_rate=click_rate,
        dispatch_lease_seconds=5.0,
        dispatch_receipt_timeout=2.0,
    )
    asyncio.run(Worker(engine, settings=settings).run(once=True))
    with session_scope(engine) as session:
        counts = service.click_counts(db_session=session, campaign_id=campaign)
    assert counts.height == 8
    assert counts["clicks"].to_list() == [int(click_rate)] * 8
    assert counts["robot_requests"].sum() == 0
