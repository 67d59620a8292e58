"""Orders are credited to messages: coupon (direct), click-through within 7 days, view-through
within 3 days of delivery; once per order, most direct then most recent; held-out members never."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from reports.world import SENT, World
from tidings import clock
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.models import MessageState
from tidings.tracking.credits import AttributionResult, attribute_orders
from tidings.tracking.models import Attribution

DELIVERED = SENT + timedelta(seconds=5)
LATER = SENT + timedelta(days=30)  # the frozen "now" of every run


def attribute(session: Session, **windows: int) -> AttributionResult:
    settings = Settings(**{f"attribution_{k}_window_days": v for k, v in windows.items()})
    with clock.frozen(LATER):
        return attribute_orders(db_session=session, settings=settings)


def credits(session: Session) -> dict[int, tuple[str, int]]:
    rows = session.execute(select(Attribution.order_id, Attribution.kind, Attribution.message_id))
    return {order_id: (str(kind), message_id) for order_id, kind, message_id in rows}


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    session = Session(engine)
    yield World(session)
    session.rollback()
    session.close()


def test_view_through_counts_orders_up_to_three_days_after_delivery(world: World) -> None:
    campaign, variants = world.campaign()
    inside, outside, before = world.member(), world.member(), world.member()
    for member in (inside, outside, before):
        world.message(campaign_id=campaign, variant_id=variants["A"], member_id=member)
    edge = world.order(inside, DELIVERED + timedelta(days=3))
    late = world.order(outside, DELIVERED + timedelta(days=3, seconds=1))
    early = world.order(before, SENT - timedelta(minutes=1))

    result = attribute(world.session)

    credited = credits(world.session)
    assert credited[edge.id][0] == "view"
    assert late.id not in credited and early.id not in credited
    assert result.credited == 1 and result.by_kind == {"view": 1}


def test_view_window_is_a_setting(world: World) -> None:
    campaign, variants = world.campaign()
    member = world.member()
    world.message(campaign_id=campaign, variant_id=variants["A"], member_id=member)
    order = world.order(member, DELIVERED + timedelta(days=2))

    attribute(world.session, view=1)

    assert order.id not in credits(world.session)


def test_click_through_counts_people_for_seven_days(world: World) -> None:
    campaign, variants = world.campaign()
    person, robot, late = world.member(), world.member(), world.member()
    clicked_at = SENT + timedelta(hours=1)
    for member in (person, robot, late):
        message = world.message(campaign_id=campaign, variant_id=variants["A"], member_id=member)
        world.click(message, clicked_at, robot=member == robot)
    within = world.order(person, clicked_at + timedelta(days=7))
    after_robot = world.order(robot, clicked_at + timedelta(days=5))
    too_late = world.order(late, clicked_at + timedelta(days=7, seconds=1))

    attribute(world.session)

    credited = credits(world.session)
    assert credited[within.id][0] == "click"
    # A link preview is no person: 5 days after it (and after delivery) earns nothing.
    assert after_robot.id not in credited
    assert too_late.id not in credited


def test_a_redeemed_coupon_credits_its_message_whenever_the_order_comes(world: World) -> None:
    campaign, variants = world.campaign()
    member = world.member()
    message = world.message(campaign_id=campaign, variant_id=variants["B"], member_id=member)
    order = world.order(member, SENT + timedelta(days=20))
    world.redeem(campaign_id=campaign, member_id=member, order=order)

    attribute(world.session)

    assert credits(world.session)[order.id] == ("coupon", message.id)


def test_a_coupon_whose_message_never_went_earns_nothing(world: World) -> None:
    campaign, variants = world.campaign()
    member = world.member()
    world.message(
        campaign_id=campaign,
        variant_id=variants["A"],
        member_id=member,
        state=MessageState.QUEUED,
    )
    order = world.order(member, SENT + timedelta(days=1))
    world.redeem(campaign_id=campaign, member_id=member, order=order)

    attribute(world.session)

    assert order.id not in credits(world.session)


def test_the_most_direct_then_the_most_recent_message_wins(world: World) -> None:
    first, first_variants = world.campaign()
    second, second_variants = world.campaign()
    member, other = world.member(), world.member()
    clicked = world.message(campaign_id=first, variant_id=first_variants["A"], member_id=member)
    world.click(clicked, SENT + timedelta(hours=1))
    viewed = world.message(
        campaign_id=second,
        variant_id=second_variants["A"],
        member_id=member,
        sent_at=SENT + timedelta(days=1),
    )
    older = world.message(campaign_id=first, variant_id=first_variants["A"], member_id=other)
    newer = world.message(
        campaign_id=second,
        variant_id=second_variants["B"],
        member_id=other,
        sent_at=SENT + timedelta(days=1),
    )
    order = world.order(member, SENT + timedelta(days=2))
    both_viewed = world.order(other, SENT + timedelta(days=2))

    attribute(world.session)

    credited = credits(world.session)
    assert credited[order.id] == ("click", clicked.id)
    assert credited[both_viewed.id] == ("view", newer.id)
    assert viewed.id != clicked.id and older.id != newer.id


def test_running_again_credits_each_order_once(world: World) -> None:
    campaign, variants = world.campaign()
    member = world.member()
    world.message(campaign_id=campaign, variant_id=variants["A"], member_id=member)
    world.order(member, SENT + timedelta(days=1))
    world.order(member, SENT + timedelta(days=2))

    first = attribute(world.session)
    second = attribute(world.session)
    newer = world.order(member, SENT + timedelta(days=2, hours=1))
    third = attribute(world.session)

    assert (first.credited, second.credited, second.upgraded) == (2, 0, 0)
    assert (third.credited, third.upgraded) == (1, 0)
    assert len(credits(world.session)) == 3 and newer.id in credits(world.session)


def test_a_late_redemption_upgrades_a_view_through_credit(world: World) -> None:
    campaign, variants = world.campaign()
    member = world.member()
    message = world.message(campaign_id=campaign, variant_id=variants["A"], member_id=member)
    order = world.order(member, SENT + timedelta(days=1))
    attribute(world.session)
    assert credits(world.session)[order.id][0] == "view"

    world.redeem(campaign_id=campaign, member_id=member, order=order)
    result = attribute(world.session)

    assert (result.credited, result.upgraded) == (0, 1)
    assert credits(world.session) == {order.id: ("coupon", message.id)}


def test_held_out_members_are_never_credited(world: World) -> None:
    campaign, variants = world.campaign(holdout_share=0.5)
    held, treated = world.member(), world.member()
    world.message(
        campaign_id=campaign,
        member_id=held,
        state=MessageState.SKIPPED,
        skip_reason="holdout",
    )
    world.message(campaign_id=campaign, variant_id=variants["A"], member_id=treated)
    held_order = world.order(held, SENT + timedelta(days=1))
    treated_order = world.order(treated, SENT + timedelta(days=1))

    attribute(world.session)

    assert set(credits(world.session)) == {treated_order.id}
    assert held_order.id not in credits(world.session)


def test_orders_before_since_are_left_alone(engine: Engine) -> None:
    with session_scope(engine) as session:
        world = World(session)
        campaign, variants = world.campaign()
        member = world.member()
        world.message(campaign_id=campaign, variant_id=variants["A"], member_id=member)
        world.order(member, SENT + timedelta(days=1))
    with session_scope(engine) as session:
        skipped = attribute_orders(db_session=session, since=SENT + timedelta(days=2))
        counted = attribute_orders(db_session=session, since=SENT - timedelta(days=1))

    assert (skipped.orders, skipped.credited) == (0, 0)
    assert (counted.orders, counted.credited) == (1, 1)


def test_the_worker_credits_orders_in_its_housekeeping(engine: Engine) -> None:
    import asyncio

    from tidings.dispatch.worker import Worker

    with session_scope(engine) as session:
        world = World(session)
        campaign, variants = world.campaign()
        member = world.member()
        world.message(campaign_id=campaign, variant_id=variants["A"], member_id=member)
        order_id = world.order(member, SENT + timedelta(days=1)).id
    settings = Settings(attribution_interval_seconds=0)

    with clock.frozen(SENT + timedelta(days=2)):
        asyncio.run(Worker(engine, settings=settings).run(once=True))

    with Session(engine) as session:
        assert credits(session)[order_id][0] == "view"
