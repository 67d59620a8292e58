"""A plan is written in one transaction, a piece while the next is planned: a plan that breaks
off while being planned or written leaves the campaign's earlier plan as it was, every
message and summary of it; the codes its messages show are issued only when they are sent."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import Engine, text

from tidings.campaigns import planner, service, sources
from tidings.campaigns.schemas import CampaignCreate, CouponOffer, VariantCreate
from tidings.db import session_scope

from .conftest import add_members, message_rows, midday_zone

NOW = datetime.now(UTC).replace(microsecond=0)


class WriteBrokeOff(RuntimeError):
    """Stands for the process dying after the messages were written."""


def test_a_plan_that_breaks_off_mid_write_leaves_the_earlier_plan(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_members(engine, 300, timezone=midday_zone())
    spec = CampaignCreate(
        name="会员日",
        rule="consent == true or consent == false",
        variants=[
            VariantCreate(template="A {surname} 券码{coupon}"),
            VariantCreate(template="B {surname}"),
        ],
        holdout=0.1,
        coupon_offer=CouponOffer(value_cents=1000, min_spend_cents=5000, valid_days=7),
    )
    with session_scope(engine) as session:
        campaign_id = service.create(db_session=session, spec=spec).id
    with session_scope(engine) as session:
        first = service.plan(db_session=session, campaign_id=campaign_id, now=NOW)
    before = message_rows(engine, campaign_id)
    assert before["text"].str.contains("券码").any()
    assert _coupons(engine, campaign_id).height == 0  # issued when the messages are sent

    def broken(*_: object, **__: object) -> dict[str, object]:
        raise WriteBrokeOff("the process died while summing the plan up")

    # The messages of the new plan are written, then the plan fails.
    monkeypatch.setattr(service, "summarise", broken)
    written = sources.insert_plan
    calls: list[int] = []

    def counted(*args: object, **kwargs: object) -> int:
        calls.append(written(*args, **kwargs))  # type: ignore[arg-type]
        return calls[-1]

    monkeypatch.setattr(sources, "insert_plan", counted)
    with pytest.raises(WriteBrokeOff), session_scope(engine) as session:
        # An hour on, every message of the new plan goes at another time.
        service.plan(db_session=session, campaign_id=campaign_id, now=NOW + timedelta(hours=1))
    # The members skipped, then those going: all 300 written before the plan failed.
    assert len(calls) == 2
    assert sum(calls) == 300
    assert message_rows(engine, campaign_id).equals(before)
    assert _coupons(engine, campaign_id).height == 0
    with session_scope(engine) as session:
        campaign = service.get(db_session=session, campaign_id=campaign_id)
        assert campaign.plan_summary == first


class RenderBrokeOff(RuntimeError):
    """Stands for the planner failing while the pieces before were being written."""


def test_a_plan_that_breaks_off_mid_planning_leaves_the_earlier_plan(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_members(engine, 300, timezone=midday_zone())
    spec = CampaignCreate(
        name="周末",
        rule="consent == true or consent == false",
        variants=[VariantCreate(template="A {surname}"), VariantCreate(template="B {surname}")],
        holdout=0.1,
    )
    with session_scope(engine) as session:
        campaign_id = service.create(db_session=session, spec=spec).id
    with session_scope(engine) as session:
        first = service.plan(db_session=session, campaign_id=campaign_id, now=NOW)
    before = message_rows(engine, campaign_id)
    rendered, inserted = planner.checked_texts, sources.insert_plan
    renders: list[int] = []
    written = threading.Event()

    def insert_and_tell(*args: object, **kwargs: object) -> int:
        count = inserted(*args, **kwargs)  # type: ignore[arg-type]
        written.set()
        return count

    def second_breaks(*args: object, **kwargs: object) -> pl.DataFrame:
        renders.append(1)
        if len(renders) == 2:
            # Only once the writer has deleted the earlier plan and stored the skipped.
            assert written.wait(10)
            raise RenderBrokeOff("the second variant's rendering failed")
        return rendered(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sources, "insert_plan", insert_and_tell)
    monkeypatch.setattr(planner, "checked_texts", second_breaks)
    with pytest.raises(RenderBrokeOff), session_scope(engine) as session:
        service.plan(db_session=session, campaign_id=campaign_id, now=NOW + timedelta(hours=1))
    assert written.is_set()
    assert message_rows(engine, campaign_id).equals(before)
    with session_scope(engine) as session:
        assert service.get(db_session=session, campaign_id=campaign_id).plan_summary == first


def test_going_messages_are_written_in_member_order_with_the_variants_mixed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dispatcher sends messages due at the same moment in the order they were written:
    # a plan written a variant at a time would send one variant first.
    monkeypatch.setattr(planner, "PIECE_ROWS", 40)
    add_members(engine, 300, timezone=midday_zone())
    spec = CampaignCreate(
        name="双旦",
        rule="consent == true or consent == false",
        variants=[VariantCreate(template="A {surname}"), VariantCreate(template="B {surname}")],
    )
    with session_scope(engine) as session:
        campaign_id = service.create(db_session=session, spec=spec).id
        service.plan(db_session=session, campaign_id=campaign_id, now=NOW)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT member_id, variant_id FROM messages"
                " WHERE campaign_id = :id AND state = 'planned' ORDER BY id"
            ),
            {"id": campaign_id},
        ).all()
    members = [member for member, _ in rows]
    assert len(members) == 300
    assert members == sorted(members)
    first_variant = {variant for _, variant in rows[:100]}
    assert len(first_variant) == 2


def _coupons(engine: Engine, campaign_id: int) -> pl.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT member_id, code FROM coupons WHERE campaign_id = :id ORDER BY code"),
            {"id": campaign_id},
        ).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=["member_id", "code"], orient="row")
