"""`explain` and `tidings policy show`: what an operator reads about the rules and a decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

from tidings.cli import app
from tidings.config import get_settings
from tidings.policy.decide import decide
from tidings.policy.explain import explain
from tidings.policy.rules import PolicyRules

from .test_policy_decide import NO_SUPPRESSIONS, NOW, SHANGHAI, candidates, history


def decided_row(
    frame: pl.DataFrame,
    rules: PolicyRules,
    *,
    past: pl.DataFrame | None = None,
    suppressions: pl.DataFrame = NO_SUPPRESSIONS,
) -> dict[str, object]:
    past = past if past is not None else history()
    result = decide(frame, history=past, suppressions=suppressions, rules=rules, now=NOW)
    return result.row(0, named=True)


def test_a_capped_member_is_told_how_many_messages_and_the_latest(rules: PolicyRules) -> None:
    # The latest of four marketing messages went on 19 November at 10:00 in Shanghai.
    days = (1 - 2 / 24, 9, 16, 23)
    past = history(*(("marketing", NOW - timedelta(days=day)) for day in days))
    row = decided_row(candidates({}), rules, past=past)
    assert explain(row, history=past, rules=rules) == (
        "It was not sent: they already had 4 marketing and trigger messages in the last 30 "
        "days (the cap for ordinary members), the latest on 11月19日."
    )


def test_an_opted_out_member_is_told_so(rules: PolicyRules) -> None:
    suppressed = pl.DataFrame({"phone_hash": ["p1"], "reason": ["opted_out"]})
    row = decided_row(candidates({}), rules, suppressions=suppressed)
    assert explain(row, rules=rules) == "It was not sent: they opted out of marketing."


def test_an_expired_message_names_the_window_and_the_timezone(rules: PolicyRules) -> None:
    at_2000 = datetime(2025, 11, 20, 20, 0, tzinfo=UTC) - SHANGHAI
    frame = candidates({"desired_at": at_2000, "expires_at": at_2000 + timedelta(hours=3)})
    row = decided_row(frame, rules)
    assert explain(row, rules=rules) == (
        "It was not sent: 20:00 is outside the send window 08:00–20:00 in Asia/Shanghai, "
        "and the next opening is after the message expires."
    )


def test_a_deferred_message_says_when_and_why(rules: PolicyRules) -> None:
    at_2300 = datetime(2025, 11, 20, 23, 0, tzinfo=UTC) - SHANGHAI
    row = decided_row(candidates({"kind": "transactional", "desired_at": at_2300}), rules)
    assert explain(row, rules=rules) == (
        "It waits until 11月21日 08:00 (Asia/Shanghai): 23:00 is within quiet hours "
        "22:00–08:00 in Asia/Shanghai."
    )


def test_a_cool_down_names_the_offer_and_when_it_was_last_made(rules: PolicyRules) -> None:
    past = history(("trigger", NOW - timedelta(days=10), "coupon"))
    frame = candidates({"offer_type": "coupon"})
    row = decided_row(frame, rules, past=past)
    assert explain(row, history=past, rules=rules) == (
        "It was not sent: they had a 'coupon' offer on 11月10日, and the same offer type "
        "waits 30 days."
    )


def test_a_sent_message_says_when_it_goes(rules: PolicyRules) -> None:
    row = decided_row(candidates({}), rules)
    assert explain(row, rules=rules) == (
        "It goes at 11月20日 10:00 (Asia/Shanghai): no rule holds it back."
    )


def test_policy_show_prints_the_rules_in_force_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_CAPS", "default=3/30d;gold=2/7d")
    monkeypatch.setenv("TIDINGS_QUIET_HOURS", "21:00-08:00")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["policy", "show", "--json"], catch_exceptions=False)
        table = CliRunner().invoke(app, ["policy", "show"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["quiet_hours"] == "21:00–08:00"
    assert shown["windows"]["transactional"] == "08:00–21:00"
    assert [(cap["selector"], cap["limit"], cap["window_days"]) for cap in shown["caps"]] == [
        ("default", 3, 30),
        ("gold", 2, 7),
    ]
    assert shown["offer_cooldown_days"] == 30
    assert shown["no_marketing_on_holidays"] is False
    assert table.exit_code == 0 and "ordinary members" in table.output


def test_policy_show_names_a_setting_that_cannot_be_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_CAPS", "gold=2/7x")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["policy", "show"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "TIDINGS_CAPS: 'gold=2/7x' — the window must be like 7d or 30d" in result.output
