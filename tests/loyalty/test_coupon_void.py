"""Coupons that can no longer be meant for anyone are voided: those of a cancelled campaign
not redeemed, and those whose message never reached the member (failed, expired, skipped,
voided by the worker's housekeeping). The till refuses a voided coupon with reason `void`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import Engine, text

from campaigns.conftest import add_members, midday_zone
from tidings.campaigns import service
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker
from tidings.loyalty import coupons

from .test_campaign_coupons import (
    _campaign,
    _coupons,
    _plan,
    _send,
    fresh_snapshots,  # noqa: F401 (autouse)
)

AT_TILL = datetime.now(UTC) + timedelta(hours=1)  # within the coupons' 7 valid days


def _redeem(engine: Engine, code: str, order: str) -> None:
    with session_scope(engine) as session:
        coupons.redeem(
            db_session=session, code=code, order_ref=order, amount_cents=9_000, now=AT_TILL
        )


def _refusal(engine: Engine, code: str) -> str:
    with pytest.raises(coupons.CouponRefused) as refused, session_scope(engine) as session:
        coupons.redeem(
            db_session=session, code=code, order_ref="late", amount_cents=9_000, now=AT_TILL
        )
    return refused.value.reason


def test_cancelling_a_campaign_voids_its_coupons_not_redeemed(engine: Engine) -> None:
    add_members(engine, 12, timezone=midday_zone())
    campaign = _campaign(engine)
    _plan(engine, campaign)
    _send(engine, campaign)
    issued = _coupons(engine, campaign)
    used, unused = issued["code"][0], issued["code"][1]
    _redeem(engine, used, "SO-1")
    with session_scope(engine) as session:
        service.cancel(db_session=session, campaign_id=campaign)
    statuses = _coupons(engine, campaign)["status"].value_counts(sort=True).rows()
    assert statuses == [("void", issued.height - 1), ("redeemed", 1)]
    assert _refusal(engine, unused) == "void"
    _redeem(engine, used, "SO-1")  # the redeemed one still answers its own order


def test_the_worker_voids_coupons_whose_message_never_arrived(engine: Engine) -> None:
    add_members(engine, 12, timezone=midday_zone())
    campaign = _campaign(engine)
    _plan(engine, campaign)
    _send(engine, campaign)
    members = _coupons(engine, campaign)["member_id"].to_list()
    ended = {members[0]: "failed", members[1]: "expired", members[2]: "skipped"}
    with engine.begin() as connection:
        for member_id, state in {**ended, members[3]: "delivered"}.items():
            connection.execute(
                text("UPDATE messages SET state = :s WHERE campaign_id = :c AND member_id = :m"),
                {"s": state, "c": campaign, "m": member_id},
            )
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    asyncio.run(Worker(engine, settings=settings).run(once=True))
    after = _coupons(engine, campaign)
    voided = after.filter(pl.col("status") == "void")["member_id"].to_list()
    assert sorted(voided) == sorted(ended)
    assert after.filter(pl.col("status") == "issued").height == len(members) - len(ended)
    code = after.filter(pl.col("member_id") == members[0])["code"].item()
    assert _refusal(engine, code) == "void"
