"""Fixtures of the dispatch tests: an outbox filled in bulk, a simulator writing to a temp inbox."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, text

from tidings import clock
from tidings.bulk import bulk_insert
from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.config import Settings
from tidings.db import session_scope
from tidings.providers.simulator import SimulatorProvider


def add_campaign(engine: Engine, *, status: CampaignStatus = CampaignStatus.RUNNING) -> int:
    """Creates a campaign and returns its id."""
    with session_scope(engine) as session:
        campaign = Campaign(name="双十二预热", status=status)
        session.add(campaign)
        session.flush()
        return campaign.id


def add_messages(
    engine: Engine,
    count: int,
    *,
    campaign_id: int | None,
    state: str = "queued",
    send_at: datetime | None = None,
    priority: int = 9,
    kind: str = "marketing",
    expires_at: datetime | None = None,
    first_phone: int = 13800000000,
    timezone: str = "Asia/Shanghai",
) -> list[int]:
    """Writes `count` messages to the outbox in bulk and returns their ids."""
    at = send_at or clock.now() - timedelta(minutes=1)
    stamp = clock.now()
    key_prefix = f"campaign:{campaign_id}:p{priority}:{first_phone}"
    frame = pl.DataFrame(
        {
            "dedupe_key": [f"{key_prefix}:member:{i}" for i in range(count)],
            "campaign_id": [campaign_id] * count,
            "phone": [f"+86{first_phone + i}" for i in range(count)],
            "timezone": [timezone] * count,
            "kind": [kind] * count,
            "priority": [priority] * count,
            "text": [f"【tidings】会员日全场8折 {i} 拒收请回复R" for i in range(count)],
            "parts": [1] * count,
            "cost_cents": [5] * count,
            "state": [state] * count,
            "rollout_stage": [0] * count,
            "send_at": [at] * count,
            "expires_at": [expires_at] * count,
            "provider": ["simulator"] * count,
            "attempts": [0] * count,
            "created_at": [stamp] * count,
            "updated_at": [stamp] * count,
        },
        schema_overrides={
            "campaign_id": pl.Int64,
            "expires_at": pl.Datetime("us", "UTC"),
        },
    )
    with session_scope(engine) as session:
        before = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM messages")).scalar_one()
        bulk_insert(session, "messages", frame)
        ids = session.execute(
            text("SELECT id FROM messages WHERE id > :before ORDER BY id"), {"before": before}
        ).scalars()
        return list(ids)


def states(engine: Engine, *, campaign_id: int | None = None) -> Counter[str]:
    """Counts messages by state: all of them, or those of one campaign."""
    sql = "SELECT state, COUNT(*) FROM messages"
    if campaign_id is not None:
        sql += " WHERE campaign_id = :campaign"
    with engine.connect() as connection:
        rows = connection.execute(text(sql + " GROUP BY state"), {"campaign": campaign_id})
        return Counter({state: n for state, n in rows})


def inbox_lines(path: Path) -> list[dict[str, object]]:
    """What the simulated handsets received: a line a killed worker cut short is no message
    a handset could read."""
    if not path.exists():
        return []
    received = []
    for line in path.read_bytes().splitlines():
        try:
            received.append(json.loads(line))
        except ValueError:
            continue
    return received


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a quick, fully delivering simulator writing to a temp inbox."""
    return Settings(
        simulator_inbox=tmp_path / "inbox.jsonl",
        simulator_receipt_delay="0-0.05",
        simulator_failure_rate=0.0,
        simulator_delivery_rate=1.0,
        dispatch_lease_seconds=5.0,
        dispatch_receipt_timeout=2.0,
        send_window="00:00-00:00",
        quiet_hours="",
    )


@pytest.fixture
def simulator(settings: Settings) -> SimulatorProvider:
    """The simulator built from the test settings."""
    return SimulatorProvider.from_settings(settings)
