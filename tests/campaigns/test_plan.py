"""Planning: one row per member, deterministic variants and holdout, every skip with its reason."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl
import pytest
from sqlalchemy import Engine, text

from tidings.campaigns import service
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.campaigns.service import CampaignError, CampaignStateError
from tidings.campaigns.sources import phone_hash
from tidings.db import session_scope

from .conftest import add_members, message_rows, midday_zone


def create(engine: Engine, **fields: object) -> int:
    values: dict[str, object] = {
        "name": "会员日",
        "rule": "consent == true or consent == false",
        "variants": [VariantCreate(template="{surname}，会员日全场8折")],
    }
    values.update(fields)
    with session_scope(engine) as session:
        return service.create(db_session=session, spec=CampaignCreate(**values)).id  # type: ignore[arg-type]


def plan(engine: Engine, campaign_id: int, now: datetime | None = None) -> dict[str, object]:
    with session_scope(engine) as session:
        return service.plan(db_session=session, campaign_id=campaign_id, now=now)


def test_variants_and_holdout_split_by_weight_and_skips_say_why(engine: Engine) -> None:
    add_members(engine, 2000, consent_every=2, timezone=midday_zone())
    campaign = create(
        engine,
        variants=[
            VariantCreate(template="{surname}，会员日全场8折", weight=3),
            VariantCreate(template="{surname}，会员日满100减20", weight=1),
        ],
        holdout=0.2,
    )
    summary = plan(engine, campaign)
    assert summary["audience"] == 2000
    assert summary["skipped"] == {"no_consent": 1000}
    assert summary["holdout"] + summary["planned"] == 1000
    assert 150 < summary["holdout"] < 250  # 20% of the 1,000 who may get it
    rows = message_rows(engine, campaign)
    assert rows.height == 2000
    planned = rows.filter(pl.col("state") == "planned")
    share_a = planned.filter(pl.col("variant") == "A").height / planned.height
    assert 0.70 < share_a < 0.80  # weights 3:1
    held = rows.filter(pl.col("skip_reason") == "holdout")
    assert held["variant"].null_count() == held.height
    assert planned["text"].str.starts_with("【tidings】").all()
    assert planned["text"].str.ends_with("拒收请回复R").all()
    assert summary["cost_cents"] == 5 * summary["segments_total"]


def test_planning_twice_gives_the_same_plan_and_no_duplicates(engine: Engine) -> None:
    add_members(engine, 500, timezone=midday_zone())
    campaign = create(
        engine,
        variants=[VariantCreate(template="A {surname}"), VariantCreate(template="B {surname}")],
        holdout=0.1,
        rollout=[1, 10, 100],
    )
    first = plan(engine, campaign)
    before = message_rows(engine, campaign).drop("send_at")
    second = plan(engine, campaign)
    after = message_rows(engine, campaign).drop("send_at")
    assert first == second
    assert after.equals(before)
    assert after["member_id"].n_unique() == after.height == 500


def test_each_skip_has_its_reason(engine: Engine) -> None:
    zone = midday_zone()
    add_members(engine, 6, timezone=zone)
    with session_scope(engine) as session:
        session.execute(text("UPDATE members SET phone_status = 'invalid' WHERE id = 2"))
        session.execute(text("UPDATE members SET name = NULL WHERE id = 3"))
        session.execute(
            text(
                "INSERT INTO suppressions (phone_hash, reason, source, created_at)"
                " VALUES (:h, 'complained', 'test', :at)"
            ),
            {"h": phone_hash("+8613900000004"), "at": datetime.now(UTC)},
        )
        session.execute(text("UPDATE consent_events SET kind = 'opt_out' WHERE member_id = 5"))
    campaign = create(engine, variants=[VariantCreate(template="{name}，会员日全场8折")])
    summary = plan(engine, campaign)
    reasons = dict(message_rows(engine, campaign).select("member_id", "skip_reason").iter_rows())
    assert reasons == {
        1: None,
        2: "invalid_phone",
        3: "missing_field:name",
        4: "complained",
        5: "no_consent",
        6: None,
    }
    assert summary["planned"] == 2


def test_a_blocked_word_skips_the_message_with_the_term(engine: Engine) -> None:
    add_members(engine, 3, timezone=midday_zone())
    campaign = create(engine, variants=[VariantCreate(template="{name}，代开发票找我")])
    summary = plan(engine, campaign)
    assert summary["planned"] == 0
    assert summary["skipped"] == {"content:sensitive_word:代开发票": 3}


def test_a_campaign_with_a_bad_template_or_rollout_is_refused(engine: Engine) -> None:
    with pytest.raises(CampaignError, match="variant A: column 1: unknown field 'nmae'"):
        create(engine, variants=[VariantCreate(template="{nmae}，你好")])
    with pytest.raises(CampaignError, match="rising percentages ending at 100"):
        create(engine, rollout=[10, 5, 100])
    with pytest.raises(CampaignError, match="no coupon"):
        create(engine, variants=[VariantCreate(template="券码 {coupon}")])


def test_a_running_campaign_cannot_be_planned_again(engine: Engine) -> None:
    add_members(engine, 5, timezone=midday_zone())
    campaign = create(engine)
    plan(engine, campaign)
    with session_scope(engine) as session:
        service.send(db_session=session, campaign_id=campaign)
    with pytest.raises(CampaignStateError, match="is running"):
        plan(engine, campaign)


def test_the_campaign_gives_its_coupon_link_and_expiry_to_every_message(engine: Engine) -> None:
    add_members(engine, 3, timezone=midday_zone())
    campaign = create(
        engine,
        variants=[VariantCreate(template="券码{coupon}，{expiry_date}前有效，详见 {link}")],
        coupon="FRUIT20",
        link="https://t.example.cn/f20",
        expires="2030-01-05T20:00",
    )
    plan(engine, campaign)
    texts = message_rows(engine, campaign)["text"].to_list()
    # {link} is each member's own short link on the served address (tests/tracking has more).
    link = r"http://127\.0\.0\.1:8000/s/\w{7}"
    shown = rf"【tidings】券码FRUIT20，1月5日前有效，详见 {link} 拒收请回复R"
    assert all(re.fullmatch(shown, body) for body in texts), texts
    assert len(set(texts)) == 3
