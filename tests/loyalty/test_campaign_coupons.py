"""A campaign's coupon offer: each planned member is shown a code of their own in
`{coupon}`, the same when planned again, and the coupon is issued when their message's
rollout stage is sent: a skipped member, a stage held back or a campaign cancelled first
issues none; a code another coupon holds is replaced everywhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Engine, text

from campaigns.conftest import add_members, message_rows, midday_zone
from tidings.campaigns import service
from tidings.campaigns.rollout import release_next_stage
from tidings.campaigns.schemas import CampaignCreate, CouponOffer, VariantCreate
from tidings.db import session_scope
from tidings.loyalty import offers
from tidings.loyalty.codes import CODE_LENGTH, is_well_formed
from tidings.loyalty.offers import campaign_codes
from tidings.segments.snapshot import invalidate

TEMPLATE = "{surname}，满50减10券码{coupon}"


@pytest.fixture(autouse=True)
def fresh_snapshots() -> None:
    """Each test writes a new base: forget the audience kept in memory by an earlier one."""
    invalidate()


def _campaign(engine: Engine, **fields: Any) -> int:
    spec = CampaignCreate(
        name="会员日",
        rule="consent == true or consent == false",
        variants=[VariantCreate(template=TEMPLATE)],
        coupon_offer=CouponOffer(value_cents=1000, min_spend_cents=5000, valid_days=7),
        **fields,
    )
    with session_scope(engine) as session:
        return service.create(db_session=session, spec=spec).id


def _plan(engine: Engine, campaign_id: int) -> dict[str, Any]:
    with session_scope(engine) as session:
        return service.plan(db_session=session, campaign_id=campaign_id)


def _send(engine: Engine, campaign_id: int) -> int:
    with session_scope(engine) as session:
        return service.send(db_session=session, campaign_id=campaign_id)


def _coupons(engine: Engine, campaign_id: int) -> pl.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT member_id, code, value_cents, min_spend_cents, status FROM coupons"
                " WHERE campaign_id = :id ORDER BY member_id"
            ),
            {"id": campaign_id},
        ).all()
    schema = ["member_id", "code", "value_cents", "min_spend_cents", "status"]
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def test_only_planned_members_get_a_coupon_shown_in_their_message(engine: Engine) -> None:
    add_members(engine, 60, consent_every=3, timezone=midday_zone())
    campaign = _campaign(engine, holdout=0.2)
    summary = _plan(engine, campaign)
    rows = message_rows(engine, campaign)
    planned = rows.filter(pl.col("state") == "planned")
    assert _coupons(engine, campaign).height == 0  # a plan only shows the codes
    _send(engine, campaign)
    issued = _coupons(engine, campaign)
    assert summary["planned"] == planned.height == issued.height > 0
    assert issued["member_id"].to_list() == planned["member_id"].to_list()
    assert issued["code"].n_unique() == issued.height
    assert all(is_well_formed(code) for code in issued["code"])
    assert issued.select(pl.col("value_cents", "min_spend_cents").unique()).rows() == [(1000, 5000)]
    shown = planned.join(issued, on="member_id").select(
        pl.col("text").str.contains(pl.col("code"), literal=True).all()
    )
    assert shown.item()
    # Held-out and unconsented members have no message and no coupon.
    assert rows.filter(pl.col("state") == "skipped")["text"].to_list() == [""] * (
        rows.height - planned.height
    )


def test_planning_again_keeps_the_codes_and_drops_the_skipped(engine: Engine) -> None:
    add_members(engine, 30, timezone=midday_zone())
    campaign = _campaign(engine)
    _plan(engine, campaign)
    before = message_rows(engine, campaign).select("member_id", "text")
    with session_scope(engine) as session:  # five members' consent is withdrawn
        session.execute(text("DELETE FROM consent_events WHERE member_id <= 5"))
    invalidate(engine)
    _plan(engine, campaign)
    rows = message_rows(engine, campaign)
    skipped = rows.filter(pl.col("skip_reason") == "no_consent")
    assert skipped["member_id"].to_list() == [1, 2, 3, 4, 5]
    kept = rows.filter(pl.col("state") == "planned").select("member_id", "text")
    assert kept.equals(before.filter(pl.col("member_id") > 5))
    _send(engine, campaign)
    issued = _coupons(engine, campaign)
    assert issued["member_id"].to_list() == list(range(6, 31))
    derived = campaign_codes(issued["member_id"], campaign_id=campaign)
    assert issued["code"].to_list() == derived.to_list()


def _sent_in_two_stages(engine: Engine, members: int) -> int:
    """A coupon campaign to `members` members, planned and sent: its first stage (a quarter)
    is queued, the rest wait for the next."""
    add_members(engine, members, timezone=midday_zone())
    campaign = _campaign(engine, rollout=[25, 100])
    _plan(engine, campaign)
    _send(engine, campaign)
    return campaign


def test_a_stage_held_back_or_cancelled_issues_no_coupon(engine: Engine) -> None:
    campaign = _sent_in_two_stages(engine, 40)
    rows = message_rows(engine, campaign)
    first = rows.filter(pl.col("rollout_stage") == 0)["member_id"].to_list()
    assert 0 < len(first) < 40
    assert _coupons(engine, campaign)["member_id"].to_list() == first
    with session_scope(engine) as session:  # the operator stops it after the first stage
        service.cancel(db_session=session, campaign_id=campaign)
    voided = _coupons(engine, campaign)
    assert voided["member_id"].to_list() == first and set(voided["status"]) == {"void"}


def test_the_next_stage_issues_its_members_coupons(engine: Engine) -> None:
    campaign = _sent_in_two_stages(engine, 40)
    first = _coupons(engine, campaign)
    with session_scope(engine) as session:
        release_next_stage(
            session, service.get(db_session=session, campaign_id=campaign), now=datetime.now(UTC)
        )
    issued = _coupons(engine, campaign)
    assert issued["member_id"].to_list() == list(range(1, 41))
    assert first.join(issued, on=["member_id", "code"]).height == first.height
    texts = message_rows(engine, campaign).join(issued, on="member_id")
    assert texts.select(pl.col("text").str.contains(pl.col("code"), literal=True).all()).item()


def test_a_code_another_coupon_holds_is_replaced_in_coupon_and_message(engine: Engine) -> None:
    add_members(engine, 10, timezone=midday_zone())
    campaign = _campaign(engine)
    taken = campaign_codes(pl.Series([4]), campaign_id=campaign)[0]
    with session_scope(engine) as session:  # an older coupon of nobody's holds member 4's code
        session.execute(
            text(
                "INSERT INTO coupons (code, source, kind, value_cents, discount_percent,"
                " min_spend_cents, valid_from, status, created_at) VALUES (:code, 'points',"
                " 'value', 100, 0, 0, :at, 'issued', :at)"
            ),
            {"code": taken, "at": datetime.now(UTC)},
        )
    _plan(engine, campaign)
    _send(engine, campaign)
    issued = _coupons(engine, campaign)
    fresh = issued.filter(pl.col("member_id") == 4)["code"].item()
    assert issued.height == 10 and fresh != taken and len(fresh) == CODE_LENGTH
    texts = message_rows(engine, campaign).filter(pl.col("member_id") == 4)["text"]
    assert fresh in texts.item() and taken not in texts.item()


def test_an_offer_and_a_fixed_code_are_not_both_given(engine: Engine, cli: Any) -> None:
    with pytest.raises(ValueError, match="not both"):
        CouponOffer(value_cents=1000, discount_percent=10)
    made = cli(
        "campaign", "create", "--name", "券", "--rule", "consent == true", "--template",
        TEMPLATE, "--coupon-value", "10", "--coupon-min-spend", "50", "--coupon-valid-days", "7",
        "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    campaign_id = json.loads(made.output)["id"]
    with session_scope(engine) as session:
        terms = offers.terms_of(service.get(db_session=session, campaign_id=campaign_id).coupon)
    assert terms is not None
    assert (terms.value_cents, terms.min_spend_cents, terms.valid_days) == (1000, 5000, 7)
    both = cli(
        "campaign", "create", "--name", "券", "--rule", "consent == true", "--template",
        TEMPLATE, "--coupon", "FIXED", "--coupon-value", "10",
    )  # fmt: skip
    assert both.exit_code == 2 and "not both" in both.output


def test_a_variant_that_does_not_show_the_coupon_issues_none(engine: Engine) -> None:
    add_members(engine, 40, timezone=midday_zone())
    spec = CampaignCreate(
        name="券与无券",
        rule="consent == true",
        variants=[VariantCreate(template=TEMPLATE), VariantCreate(template="{surname}，会员日8折")],
        coupon_offer=CouponOffer(discount_percent=20),
    )
    with session_scope(engine) as session:
        campaign = service.create(db_session=session, spec=spec).id
    _plan(engine, campaign)
    planned = message_rows(engine, campaign).filter(pl.col("state") == "planned")
    _send(engine, campaign)
    with_coupon = planned.filter(pl.col("variant") == "A")["member_id"].to_list()
    assert 0 < len(with_coupon) < planned.height
    assert _coupons(engine, campaign)["member_id"].to_list() == with_coupon
