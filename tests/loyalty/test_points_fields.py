"""The points fields work in rules and templates: `points_expiring > 0` picks the members
whose points expire soon, and `{points_expiring}` and `{points_expiry_date}` show them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from sqlalchemy import Engine

from campaigns.conftest import add_members, message_rows, midday_zone
from tidings import clock
from tidings.campaigns import service
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.db import session_scope
from tidings.loyalty.models import LotKind, PointsLot
from tidings.members.models import Member
from tidings.segments.audience import load_audience
from tidings.segments.snapshot import invalidate

NOW = datetime.now(UTC).replace(microsecond=0)
FIRST_EXPIRY = (NOW + timedelta(days=10)).astimezone(ZoneInfo("Asia/Shanghai")).date()


@pytest.fixture(autouse=True)
def fresh_snapshots() -> None:
    invalidate()


def _ledger(engine: Engine) -> None:
    """Member 1: 80 points expiring in 10 days and 20 in 25; member 2: 50 in 200 days;
    member 3: 30 that expired yesterday (not yet written off)."""
    lots = {1: [(80, 10), (20, 25)], 2: [(50, 200)], 3: [(30, -1)]}
    with session_scope(engine) as session:
        for member_id, entries in lots.items():
            for points, days in entries:
                session.add(
                    PointsLot(
                        member_id=member_id,
                        kind=LotKind.ACCRUAL,
                        points=points,
                        remaining=points,
                        occurred_at=NOW - timedelta(days=300),
                        expires_at=NOW + timedelta(days=days),
                    )
                )
            member = session.get(Member, member_id)
            assert member is not None
            member.points = sum(points for points, _ in entries)


def test_expiring_points_are_fields_of_the_audience(engine: Engine) -> None:
    add_members(engine, 4, timezone=midday_zone())
    _ledger(engine)
    with clock.frozen(NOW):
        audience = load_audience(
            engine, fields=["points_balance", "points_expiring", "points_expiry_date"]
        )
    assert audience.rows() == [
        (1, 100, 100, FIRST_EXPIRY),
        (2, 50, 0, None),
        (3, 30, 0, None),
        (4, 40, 0, None),
    ]


def test_a_campaign_reminds_members_of_points_about_to_expire(engine: Engine) -> None:
    add_members(engine, 4, timezone=midday_zone())
    _ledger(engine)
    spec = CampaignCreate(
        name="积分过期提醒",
        rule="points_expiring > 0",
        variants=[
            VariantCreate(template="您有{points_expiring}积分将于{points_expiry_date}起过期")
        ],
    )
    with clock.frozen(NOW), session_scope(engine) as session:
        campaign = service.create(db_session=session, spec=spec).id
        summary = service.plan(db_session=session, campaign_id=campaign, now=NOW)
    assert summary["audience"] == 1
    day = FIRST_EXPIRY
    planned = message_rows(engine, campaign).filter(pl.col("state") == "planned")
    assert planned["member_id"].to_list() == [1]
    assert f"您有100积分将于{day.month}月{day.day}日起过期" in planned["text"].item()
