"""Replenishment, points expiring, tier change and holiday warm-up, each across its window."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy import Engine

from tidings.db import session_scope
from tidings.loyalty.models import LotKind, PointsLot
from tidings.orders.models import Product

from .conftest import add_member, add_profile, local, run_date_trigger, trigger_messages


def _staple(engine: Engine, member_id: int, run_out: date) -> None:
    with session_scope(engine) as session:
        session.add(Product(sku="MILK1L", name="有机牛奶 1L", category="乳品", pack_size_days=7))
    items = [
        {"sku": "RICE5KG", "category": "粮油", "run_out_on": (run_out + timedelta(9)).isoformat()},
        {"sku": "MILK1L", "category": "乳品", "run_out_on": run_out.isoformat()},
    ]
    add_profile(engine, member_id, next_run_out_on=run_out, replenishment=items)


def test_replenishment_names_the_product_five_days_before_it_runs_out(engine: Engine) -> None:
    add_member(engine, 1)
    _staple(engine, 1, date(2026, 6, 15))
    assert run_date_trigger(engine, "replenishment", local(2026, 6, 9))["fired"] == 0
    assert run_date_trigger(engine, "replenishment", local(2026, 6, 10))["queued"] == 1
    assert run_date_trigger(engine, "replenishment", local(2026, 6, 12))["fired"] == 0
    text = trigger_messages(engine, "replenishment")["text"][0]
    assert "您常买的有机牛奶 1L预计6月15日用完" in text


def test_points_expiring_within_fifteen_days_are_announced_once(engine: Engine) -> None:
    add_member(engine, 1)
    add_member(engine, 2, opted_out=True)
    with session_scope(engine) as session:
        for member_id in (1, 2):
            session.add(
                PointsLot(
                    member_id=member_id,
                    kind=LotKind.ACCRUAL,
                    points=1500,
                    remaining=1200,
                    occurred_at=local(2025, 6, 25),
                    expires_at=local(2026, 6, 25, 0),
                )
            )
    assert run_date_trigger(engine, "points_expiring", local(2026, 6, 9))["fired"] == 0
    report = run_date_trigger(engine, "points_expiring", local(2026, 6, 10, 12))
    assert (report["queued"], report["skipped"]) == (1, {"opted_out": 1})
    run_date_trigger(engine, "points_expiring", local(2026, 6, 11))
    sent = trigger_messages(engine, "points_expiring")
    assert sent.height == 2
    assert "您有1,200积分将于6月25日到期" in sent["text"][0]


def test_moving_up_a_tier_is_congratulated_and_moving_down_is_not(engine: Engine) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    changed = date(2026, 6, 10)
    add_profile(engine, 1, tier="gold", previous_tier="silver", tier_changed_at=changed)
    add_profile(engine, 2, tier="bronze", previous_tier="silver", tier_changed_at=changed)
    assert run_date_trigger(engine, "tier_change", local(2026, 6, 10))["queued"] == 1
    assert run_date_trigger(engine, "tier_change", local(2026, 6, 11))["fired"] == 0
    sent = trigger_messages(engine, "tier_change")
    assert sent["member_id"].to_list() == [1]
    assert "恭喜您升级为金卡会员" in sent["text"][0]


def test_a_tier_change_past_its_window_is_not_congratulated(engine: Engine) -> None:
    add_member(engine, 1)
    add_profile(engine, 1, tier="gold", previous_tier="silver", tier_changed_at=date(2026, 6, 1))
    assert run_date_trigger(engine, "tier_change", local(2026, 6, 10))["fired"] == 0


def test_holiday_warm_up_goes_a_week_before_labour_day_to_its_segment(
    engine: Engine,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    add_profile(engine, 1, tier="gold")
    add_profile(engine, 2, tier="silver")
    assert cli("trigger", "set", "holiday_warmup", "--condition", 'tier == "gold"').exit_code == 0
    assert cli("trigger", "enable", "holiday_warmup").exit_code == 0
    assert run_date_trigger(engine, "holiday_warmup", local(2026, 4, 23))["fired"] == 0
    assert run_date_trigger(engine, "holiday_warmup", local(2026, 4, 24))["queued"] == 1
    assert run_date_trigger(engine, "holiday_warmup", local(2026, 4, 30))["fired"] == 0
    sent = trigger_messages(engine, "holiday_warmup")
    assert sent["member_id"].to_list() == [1]
    assert "劳动节假期（5月1日起）将至" in sent["text"][0]


def test_a_bad_condition_is_refused_and_changes_nothing(engine: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("trigger", "set", "holiday_warmup", "--condition", "tier === gold")
    assert result.exit_code == 2
    assert "condition is not a rule" in result.output
    shown = json.loads(cli("trigger", "show", "holiday_warmup", "--json").output)
    assert shown["condition"] is None
