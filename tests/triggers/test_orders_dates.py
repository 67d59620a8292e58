"""First-order follow-up 3 days after the first order; win-back after 30 days without one,
with an optional second step; each fired on the days of its window, once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from .conftest import (
    add_member,
    add_order,
    add_sent_messages,
    local,
    run_date_trigger,
    trigger_messages,
)


def test_the_follow_up_goes_three_days_after_the_first_order_once(engine: Engine) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    add_order(engine, 1, local(2026, 6, 7, 19))
    add_order(engine, 2, local(2026, 5, 1, 19))  # not a first order any more:
    add_order(engine, 2, local(2026, 6, 7, 19))
    assert run_date_trigger(engine, "first_order", local(2026, 6, 9))["fired"] == 0
    assert run_date_trigger(engine, "first_order", local(2026, 6, 10))["queued"] == 1
    assert run_date_trigger(engine, "first_order", local(2026, 6, 11))["fired"] == 0
    sent = trigger_messages(engine, "first_order")
    assert sent["member_id"].to_list() == [1]
    assert "第一次购物" in sent["text"][0]


def test_the_follow_up_catches_up_within_its_window_and_not_after(engine: Engine) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    add_order(engine, 1, local(2026, 6, 5, 12))  # 5 days before: the window's last day
    add_order(engine, 2, local(2026, 6, 4, 12))  # 6 days before: too late
    run_date_trigger(engine, "first_order", local(2026, 6, 10))
    assert trigger_messages(engine, "first_order")["member_id"].to_list() == [1]


def _winback(engine: Engine, day: int, month: int = 7) -> dict[str, Any]:
    return run_date_trigger(engine, "winback", local(2026, month, day))


def test_win_back_after_thirty_days_without_an_order(engine: Engine) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    add_order(engine, 1, local(2026, 6, 1, 12))
    add_order(engine, 2, local(2026, 6, 20, 12))
    assert _winback(engine, 30, month=6)["fired"] == 0
    assert _winback(engine, 1)["queued"] == 1
    assert _winback(engine, 2)["fired"] == 0
    assert trigger_messages(engine, "winback")["member_id"].to_list() == [1]


def test_a_member_who_returns_and_lapses_again_is_won_back_again(engine: Engine) -> None:
    add_member(engine, 1)
    add_order(engine, 1, local(2026, 5, 1, 12))
    _winback(engine, 31, month=5)
    add_order(engine, 1, local(2026, 6, 5, 12))
    _winback(engine, 5)
    assert trigger_messages(engine, "winback").height == 2


def test_the_second_step_goes_only_when_set(engine: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    add_member(engine, 1)
    add_order(engine, 1, local(2026, 5, 1, 12))
    _winback(engine, 31, month=5)
    assert _winback(engine, 30, month=6)["fired"] == 0
    result = cli("trigger", "set", "winback", "second_step_days=60", "--json")
    assert result.exit_code == 0, result.output
    assert _winback(engine, 30, month=6)["queued"] == 1
    assert trigger_messages(engine, "winback").height == 2


def test_a_capped_member_is_skipped_and_the_trigger_is_not_retried(engine: Engine) -> None:
    add_member(engine, 1)
    add_order(engine, 1, local(2026, 6, 1, 12))
    add_sent_messages(engine, 1, 4, sent_at=local(2026, 6, 30))
    assert _winback(engine, 1)["skipped"] == {"frequency_cap": 1}
    assert _winback(engine, 2)["fired"] == 0
    assert trigger_messages(engine, "winback")["skip_reason"].to_list() == ["frequency_cap"]


def test_unknown_settings_and_bad_values_are_refused(engine: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    unknown = cli("trigger", "set", "winback", "dayz=40")
    assert unknown.exit_code == 2
    assert "no setting 'dayz'" in unknown.output
    negative = cli("trigger", "set", "winback", "days=-3")
    assert negative.exit_code == 2
    shown = cli("trigger", "show", "winback", "--json")
    assert '"days": 30' in shown.output
