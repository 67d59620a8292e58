"""Fixtures of the policy tests: the shipped default rules, built without the environment."""

from __future__ import annotations

import pytest

from tidings.policy.rules import DailyWindow, PolicyRules, parse_caps


def default_rules(**changes: object) -> PolicyRules:
    """The rules as shipped (config.py's defaults), with `changes` applied."""
    values: dict[str, object] = {
        "send_window": DailyWindow.parse("08:00-20:00", setting="TIDINGS_SEND_WINDOW"),
        "quiet_hours": DailyWindow.parse("22:00-08:00", setting="TIDINGS_QUIET_HOURS"),
        "caps": parse_caps("default=4/30d;active=1/7d+triggers;gold=2/7d"),
        "offer_cooldown_days": 30,
        "no_marketing_on_holidays": False,
        "default_timezone": "Asia/Shanghai",
    }
    values.update(changes)
    return PolicyRules(**values)  # type: ignore[arg-type]


@pytest.fixture
def rules() -> PolicyRules:
    return default_rules()


@pytest.fixture
def holiday_rules() -> PolicyRules:
    return default_rules(no_marketing_on_holidays=True)
