"""The wizard offers what the API does: a coupon per member (or one code for all), the
link's UTM parameters, and the rollout's health gates with winner promotion."""

from __future__ import annotations

import re

from sqlalchemy import Engine, func, select

from campaigns.conftest import add_members, midday_zone  # type: ignore[import-not-found]
from tidings.accounts.models import Role
from tidings.campaigns.models import Campaign
from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState
from tidings.loyalty import offers

from .conftest import Console, csrf_of

MEMBERS = 30


def _post(client, path: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    token = csrf_of(client, "/campaigns/new/audience")
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def test_a_coupon_per_member_and_gates_reach_the_planned_campaign(
    console: Console, engine: Engine
) -> None:
    add_members(engine, MEMBERS, timezone=midday_zone())
    client = console(Role.MARKETER)
    assert _post(
        client, "/campaigns/new/audience", {"name": "满减", "rule": "points >= 0"}
    ).is_redirect
    content = {
        "template_a": "您的专属券 {coupon}，满50减10",
        "coupon_kind": "per_member",
        "coupon_value_yuan": "10",
        "coupon_min_spend_yuan": "50",
        "coupon_valid_days": "14",
    }
    assert _post(client, "/campaigns/new/content", content).is_redirect
    assert "满50减10" in client.get("/campaigns/new/content").text  # the step remembers
    schedule = {
        "schedule": "now",
        "rollout": "10,100",
        "holdout_percent": "0",
        "gate_delivery_min": "95",
        "gate_opt_out_max": "0.5",
        "promote_winner": "true",
    }
    response = _post(client, "/campaigns/new/schedule", schedule)
    assert response.status_code == 303, response.text
    with session_scope(engine) as db_session:
        campaign = db_session.scalars(select(Campaign)).one()
        gates = campaign.gates or {}
        texts = db_session.scalars(
            select(Message.text).where(
                Message.campaign_id == campaign.id, Message.state == MessageState.PLANNED
            )
        ).all()
        terms = offers.terms_of(campaign.coupon)
    assert (gates["delivery_min"], gates["opt_out_max"]) == (0.95, 0.005)
    assert gates["promote_winner"] is True
    # Each member is shown a code of their own, issued on these terms when it is sent.
    assert terms is not None
    assert (terms.value_cents, terms.min_spend_cents, terms.valid_days) == (1000, 5000, 14)
    codes = [re.search(r"专属券 (\S+)，", text) for text in texts]
    assert texts and all(codes) and len({code.group(1) for code in codes if code}) == len(texts)


def test_a_coupon_answer_that_cannot_be_used_says_why_and_creates_nothing(
    console: Console, engine: Engine
) -> None:
    client = console(Role.MARKETER)
    _post(client, "/campaigns/new/audience", {"name": "券", "rule": "points >= 0"})
    both = {
        "template_a": "券 {coupon}",
        "coupon_kind": "per_member",
        "coupon_value_yuan": "10",
        "coupon_percent": "20",
    }
    response = _post(client, "/campaigns/new/content", both)
    assert response.status_code == 422 and "not both" in response.text
    shared = {"template_a": "券 {coupon}", "coupon_kind": "shared", "coupon_code": ""}
    assert _post(client, "/campaigns/new/content", shared).status_code == 422
    assert _post(client, "/campaigns/new/content", {**shared, "coupon_code": "VIP8"}).is_redirect
    gate = {"schedule": "now", "rollout": "100", "gate_delivery_min": "120"}
    refused = _post(client, "/campaigns/new/schedule", gate)
    assert refused.status_code == 422 and "more than 100%" in refused.text
    with session_scope(engine) as db_session:
        assert db_session.scalar(select(func.count()).select_from(Campaign)) == 0
