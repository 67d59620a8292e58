"""Policy settings: what an operator writes, what it means, and errors that say how to fix it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from tidings.config import Settings
from tidings.policy.decide import decide
from tidings.policy.rules import DailyWindow, PolicyError, PolicyRules, parse_caps
from tidings.policy.windows import holiday_name, is_holiday, next_holiday, send_window_for

from .conftest import default_rules


def test_the_shipped_settings_give_the_articles_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("CAPS", "SEND_WINDOW", "QUIET_HOURS", "OFFER_COOLDOWN_DAYS", "DEFAULT_TIMEZONE")
    for name in (*names, "NO_MARKETING_ON_HOLIDAYS"):
        monkeypatch.delenv(f"TIDINGS_{name}", raising=False)
    rules = PolicyRules.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert rules == default_rules()
    ordinary = rules.cap_for(tier=None, lifecycle_stage="dormant")
    assert ordinary is not None
    assert (ordinary.limit, ordinary.window_days, ordinary.triggers_beyond_cap) == (4, 30, False)
    active = rules.cap_for(tier=None, lifecycle_stage="active")
    assert active is not None and str(active) == "1 per 7 days + triggers"
    assert not rules.no_marketing_on_holidays


def test_the_caps_setting_says_what_plus_triggers_means() -> None:
    described = Settings.model_fields["caps"].description or ""
    assert "+triggers counts campaigns only and lets event triggers through" in described


def test_the_holiday_rule_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_NO_MARKETING_ON_HOLIDAYS", "true")
    rules = PolicyRules.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    national_day = datetime(2025, 10, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    frame = pl.DataFrame(
        {
            "member_id": [1],
            "phone_hash": ["p1"],
            "kind": ["marketing"],
            "desired_at": [national_day],
            "consent": [True],
        }
    )
    empty_history = pl.DataFrame(
        schema={"member_id": pl.Int64, "kind": pl.String, "sent_at": pl.Datetime("us", "UTC")}
    )
    suppressions = pl.DataFrame(schema={"phone_hash": pl.String, "reason": pl.String})
    decided = decide(
        frame, history=empty_history, suppressions=suppressions, rules=rules, now=national_day
    ).row(0, named=True)
    assert (decided["decision"], decided["reason"]) == ("defer", "public_holiday")
    assert decided["send_at"] == datetime(2025, 10, 9, 0, 0, tzinfo=UTC)  # 08:00 on the 9th


def test_a_tier_rule_beats_a_stage_rule_which_beats_the_default() -> None:
    rules = default_rules()
    gold_active = rules.cap_for(tier="gold", lifecycle_stage="active")
    silver_active = rules.cap_for(tier="silver", lifecycle_stage="active")
    silver_new = rules.cap_for(tier="silver", lifecycle_stage="new")
    assert gold_active is not None and gold_active.selector == "gold"
    assert silver_active is not None and silver_active.selector == "active"
    assert silver_active.triggers_beyond_cap
    assert silver_new is not None and silver_new.selector == "default"
    assert (
        default_rules(caps=parse_caps("gold=2/7d")).cap_for(tier=None, lifecycle_stage=None) is None
    )


def test_triggers_beyond_a_cap_can_be_written_for_any_rule() -> None:
    (rule,) = parse_caps(" Gold = 3 / 14d +triggers ")
    assert (rule.selector, rule.limit, rule.window_days, rule.triggers_beyond_cap) == (
        "gold",
        3,
        14,
        True,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gold=2/7x", "TIDINGS_CAPS: 'gold=2/7x' — the window must be like 7d or 30d"),
        ("gold=2/0d", "the window must be like 7d or 30d"),
        ("platinum=2/7d", "'platinum' is not default, a tier (bronze, silver, gold)"),
        ("gold=0/7d", "the limit must be at least 1"),
        ("gold=two/7d", "write the cap as limit/window, e.g. 4/30d"),
        ("gold 2/7d", "write each rule as selector=limit/window"),
        ("gold=2/7d;gold=3/7d", "'gold' has two rules; keep one"),
    ],
)
def test_caps_that_cannot_be_used_say_how_to_fix_them(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_caps(text)
    assert message in str(raised.value)


@pytest.mark.parametrize("text", ["8-20", "08:00", "08:60-20:00", "25:00-08:00", "08:00-08:00"])
def test_windows_that_cannot_be_used_say_how_to_fix_them(text: str) -> None:
    with pytest.raises(PolicyError, match="TIDINGS_SEND_WINDOW: '"):
        DailyWindow.parse(text, setting="TIDINGS_SEND_WINDOW")


def test_rules_that_could_never_send_marketing_are_refused() -> None:
    with pytest.raises(PolicyError, match="lies within the quiet hours"):
        default_rules(send_window=DailyWindow.parse("22:30-23:30", setting="s"))
    with pytest.raises(PolicyError, match="'Asia/Nowhere' is not an IANA timezone"):
        default_rules(default_timezone="Asia/Nowhere")
    with pytest.raises(PolicyError, match="TIDINGS_OFFER_COOLDOWN_DAYS"):
        default_rules(offer_cooldown_days=-1)


def test_each_kind_has_its_own_window() -> None:
    rules = default_rules()
    assert str(send_window_for(kind="marketing", rules=rules)) == "08:00–20:00"
    assert str(send_window_for(kind="trigger", rules=rules)) == "08:00–20:00"
    assert str(send_window_for(kind="transactional", rules=rules)) == "08:00–22:00"
    assert send_window_for(kind="reply", rules=rules).any_time
    wide = default_rules(send_window=DailyWindow.parse("07:00-23:00", setting="s"))
    # Quiet hours still bind marketing when the send window reaches into them.
    assert str(send_window_for(kind="marketing", rules=wide)) == "08:00–22:00"


def test_public_holidays_come_from_the_chinese_calendar() -> None:
    assert is_holiday(date(2025, 10, 1))
    assert holiday_name(date(2025, 10, 1)) == "国庆节"
    assert not is_holiday(date(2025, 10, 11))  # a Saturday, but no public holiday
    assert not is_holiday(date(2025, 10, 9))
    assert next_holiday(date(2025, 9, 20)) == date(2025, 10, 1)
    assert next_holiday(date(2099, 1, 1)) is None
