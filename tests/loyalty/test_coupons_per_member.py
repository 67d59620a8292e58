"""An offer of several coupons per member (`per_member`, `--coupon-per-member`): each
planned member gets that many distinct codes, the message shows the first, and planning
again issues the same ones."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from campaigns.conftest import add_members, message_rows, midday_zone
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.db import session_scope
from tidings.loyalty.codes import is_well_formed
from tidings.loyalty.offers import campaign_codes

from .test_campaign_coupons import (
    TEMPLATE,
    _coupons,
    _plan,
    _send,
    fresh_snapshots,  # noqa: F401 (autouse)
)


def _create(cli: Any, *more: str) -> Any:
    return cli(
        "campaign", "create", "--name", "三张券", "--rule", "consent == true", "--template",
        TEMPLATE, "--coupon-value", "10", "--json", *more,
    )  # fmt: skip


def test_each_member_gets_as_many_codes_as_the_offer_says(engine: Engine, cli: Any) -> None:
    add_members(engine, 30, timezone=midday_zone())
    made = _create(cli, "--coupon-per-member", "3")
    assert made.exit_code == 0, made.output
    campaign = json.loads(made.output)["id"]
    _plan(engine, campaign)
    planned = message_rows(engine, campaign).filter(pl.col("state") == "planned")
    _send(engine, campaign)
    issued = _coupons(engine, campaign)
    assert planned.height > 0
    assert issued.height == 3 * planned.height
    assert issued["code"].n_unique() == issued.height
    assert all(is_well_formed(code) for code in issued["code"])
    per_member = issued.group_by("member_id").len()["len"].unique().to_list()
    assert per_member == [3]
    # The message shows the member's first code, and only that one.
    first = campaign_codes(planned["member_id"], campaign_id=campaign).alias("code")
    shown = planned.with_columns(first).select(
        pl.col("text").str.contains(pl.col("code"), literal=True).all()
    )
    assert shown.item()
    others = planned.join(issued, on="member_id").filter(
        pl.col("text").str.contains(pl.col("code"), literal=True)
    )
    assert others.height == planned.height


@pytest.mark.parametrize("count", ["0", "11"])
def test_a_count_out_of_range_is_refused_and_creates_nothing(
    engine: Engine, cli: Any, count: str
) -> None:
    refused = _create(cli, "--coupon-per-member", count)
    assert refused.exit_code != 0
    assert "per_member" in refused.output
    assert cli("campaign", "list", "--json").output.strip() in ("[]", "")


def test_the_api_takes_per_member_and_refuses_a_bad_one(engine: Engine) -> None:
    add_members(engine, 10, timezone=midday_zone())
    body: dict[str, Any] = {
        "name": "三张券",
        "rule": "consent == true",
        "variants": [{"template": TEMPLATE}],
        "coupon_offer": {"value_cents": 1000, "per_member": 2},
    }
    with session_scope(engine) as db_session:
        _, key = accounts.create(db_session=db_session, name="console")
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(engine), headers=auth) as client:
        bad = client.post(
            "/api/v1/campaigns",
            json={**body, "coupon_offer": {"value_cents": 1000, "per_member": 0}},
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        made = client.post("/api/v1/campaigns", json=body)
        assert made.status_code == 201, made.text
    campaign = made.json()["id"]
    _plan(engine, campaign)
    planned = message_rows(engine, campaign).filter(pl.col("state") == "planned")
    _send(engine, campaign)
    assert _coupons(engine, campaign).height == 2 * planned.height > 0
