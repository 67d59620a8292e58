"""The review shows the first messages as members will get them, one of every variant at
least, so that each variant's rendered text is checked."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from tidings.campaigns import review, service
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.db import session_scope

from .conftest import add_members, midday_zone

NOW = datetime.now(UTC).replace(microsecond=0)


def test_the_review_shows_a_message_of_every_variant(engine: Engine) -> None:
    add_members(engine, 120, timezone=midday_zone())
    spec = CampaignCreate(
        name="秋冬上新",
        rule="consent == true",
        variants=[
            VariantCreate(template="{surname}，秋冬新款到店", weight=19),
            VariantCreate(template="{surname}，秋冬新款会员价", weight=1),
        ],
    )
    with session_scope(engine) as session:
        campaign_id = service.create(db_session=session, spec=spec).id
        service.plan(db_session=session, campaign_id=campaign_id, now=NOW)
    with session_scope(engine) as session:
        shown = review.review(db_session=session, campaign_id=campaign_id, first=2)
    first = shown["first_messages"]
    by_variant = {m["variant"]: m for m in first}
    assert set(by_variant) == {"A", "B"}
    assert [m["member_id"] for m in first[:2]] == sorted(m["member_id"] for m in first[:2])
    rare = by_variant["B"]
    assert "会员价" in rare["text"]
    assert shown["variants"][1]["messages"] < 20
