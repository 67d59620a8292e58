"""The demo's simulated reactions have a known true effect, and the campaign report finds it:
held-out members order at the base rate, treated ones more; previews are robots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from tidings.campaigns.models import Campaign, CampaignStatus, Variant
from tidings.db import session_scope
from tidings.demo.reactions import BASE_ORDER_RATE, ORDER_EFFECT, simulate_reactions
from tidings.dispatch.models import Message, MessageState
from tidings.members.models import Member, Store
from tidings.reports.service import campaign_report
from tidings.tracking.models import Click, ShortLink

SENT = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
TREATED, HELD = 3_000, 1_000


def _campaign(engine: Engine) -> int:
    """A sent campaign: 3,000 delivered messages (A and B alike, each with a link) and 1,000
    held-out members."""
    with session_scope(engine) as session:
        store = Store(code="SH01", name="徐汇店")
        campaign = Campaign(name="周末鲜果节", status=CampaignStatus.COMPLETED, holdout_share=0.25)
        session.add_all([store, campaign])
        session.flush()
        variants = [
            Variant(campaign_id=campaign.id, name=name, template="x", is_control=name == "A")
            for name in ("A", "B")
        ]
        members = [
            Member(code=f"M{i}", phone=f"+86139{i:08d}", store_id=store.id)
            for i in range(TREATED + HELD)
        ]
        session.add_all([*variants, *members])
        session.flush()
        rows: list[object] = []
        for index, member in enumerate(members):
            treated = index < TREATED
            rows.append(
                Message(
                    campaign_id=campaign.id,
                    variant_id=variants[index % 2].id if treated else None,
                    member_id=member.id,
                    phone=member.phone,
                    text="x",
                    cost_cents=5 if treated else 0,
                    state=MessageState.DELIVERED if treated else MessageState.SKIPPED,
                    skip_reason=None if treated else "holdout",
                    send_at=SENT,
                    submitted_at=SENT if treated else None,
                    delivered_at=SENT + timedelta(seconds=5) if treated else None,
                )
            )
            if treated:
                rows.append(
                    ShortLink(
                        code=f"k{index}",
                        campaign_id=campaign.id,
                        member_id=member.id,
                        target_url="https://shop.example.cn/",
                    )
                )
        session.add_all(rows)
        return campaign.id


def test_treated_members_order_more_than_held_out_ones_by_the_true_effect(engine: Engine) -> None:
    campaign_id = _campaign(engine)

    with session_scope(engine) as session:
        reactions = simulate_reactions(db_session=session, campaign_id=campaign_id)
    with session_scope(engine) as session:
        report = campaign_report(
            db_session=session, campaign_id=campaign_id, now=reactions.window_end
        )
        robots = session.scalar(select(func.count()).select_from(Click).where(Click.is_robot))

    lift = report["lift"]
    held_rate = lift["holdout"]["converted"] / HELD
    assert abs(held_rate - BASE_ORDER_RATE) < 0.025
    true_lift = sum(ORDER_EFFECT.values()) / len(ORDER_EFFECT)  # every message delivered
    difference = lift["conversion_difference"]
    assert difference["low"] <= true_lift <= difference["high"]
    assert difference["low"] > 0 and lift["measurable"] is True
    # Every treated order falls within the view window after delivery: all are credited.
    assert report["funnel"]["converted"] == lift["treated"]["converted"]
    assert reactions.robot_clicks == robots > 0
    assert report["funnel"]["clicked"] == reactions.clicks
