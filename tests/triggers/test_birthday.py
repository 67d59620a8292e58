"""Birthday: N days before (default 3), lunar birthdays on this year's solar date, once a year."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from tidings.triggers.scheduler import due, run_once, scheduled_pass, scheduler_lock

from .conftest import add_member, add_sent_messages, at, local, run_date_trigger, trigger_messages


def _run(engine: Engine, moment: datetime) -> dict[str, Any]:
    return run_date_trigger(engine, "birthday", moment)


def test_fires_three_days_before_and_not_the_day_before_that(engine: Engine) -> None:
    add_member(engine, 1, birthday=date(1990, 6, 13))
    assert _run(engine, local(2026, 6, 9))["fired"] == 0
    assert trigger_messages(engine, "birthday").height == 0
    assert _run(engine, local(2026, 6, 10))["queued"] == 1
    sent = trigger_messages(engine, "birthday")
    assert sent["state"].to_list() == ["queued"]
    assert "6月13日是您的生日" in sent["text"][0]
    assert sent["text"][0].startswith("【")
    assert sent["text"][0].endswith("拒收请回复R")


def test_fires_once_a_year_however_often_the_scheduler_runs(engine: Engine) -> None:
    add_member(engine, 1, birthday=date(1990, 6, 13))
    for moment in (local(2026, 6, 10), local(2026, 6, 10, 15), local(2026, 6, 12)):
        _run(engine, moment)
    assert trigger_messages(engine, "birthday").height == 1
    _run(engine, local(2027, 6, 11))
    assert trigger_messages(engine, "birthday").height == 2


def test_a_scheduler_down_until_the_day_catches_up_and_nothing_goes_after(engine: Engine) -> None:
    add_member(engine, 1, birthday=date(1990, 6, 13))
    add_member(engine, 2, birthday=date(1990, 6, 12))
    assert _run(engine, local(2026, 6, 13))["queued"] == 1
    assert trigger_messages(engine, "birthday")["member_id"].to_list() == [1]


def test_lunar_birthday_falls_on_this_years_solar_date(engine: Engine) -> None:
    # 五月初五 (端午) is 19 June in 2026; 八月十五 (中秋) is 25 September.
    add_member(engine, 1, birthday=date(1988, 5, 5), lunar=True)
    add_member(engine, 2, birthday=date(1988, 8, 15), lunar=True)
    assert _run(engine, local(2026, 6, 15))["fired"] == 0
    assert _run(engine, local(2026, 6, 16))["queued"] == 1
    assert "6月19日是您的生日" in trigger_messages(engine, "birthday")["text"][0]
    assert _run(engine, local(2026, 9, 22))["queued"] == 1
    assert "9月25日" in trigger_messages(engine, "birthday")["text"][1]


def test_29_february_is_celebrated_on_the_28th_in_other_years(engine: Engine) -> None:
    add_member(engine, 1, birthday=date(2000, 2, 29))
    assert _run(engine, local(2026, 2, 25))["queued"] == 1
    assert "2月28日是您的生日" in trigger_messages(engine, "birthday")["text"][0]


def test_opted_out_and_capped_members_are_skipped_with_the_reason(engine: Engine) -> None:
    add_member(engine, 1, birthday=date(1990, 6, 13), opted_out=True)
    add_member(engine, 2, birthday=date(1990, 6, 13), consent=False)
    add_member(engine, 3, birthday=date(1990, 6, 13))
    add_sent_messages(engine, 3, 4, sent_at=local(2026, 6, 8))  # the cap: 4 in 30 days
    add_member(engine, 4, birthday=date(1990, 6, 13))
    report = _run(engine, local(2026, 6, 10))
    assert report["skipped"] == {"frequency_cap": 1, "no_consent": 1, "opted_out": 1}
    sent = trigger_messages(engine, "birthday")
    assert sent["state"].to_list() == ["skipped", "skipped", "skipped", "queued"]
    assert sent["text"].to_list()[:3] == ["", "", ""]


def test_a_disabled_trigger_fires_nothing(engine: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    add_member(engine, 1, birthday=date(1990, 6, 13))
    assert cli("trigger", "disable", "birthday").exit_code == 0
    with at(local(2026, 6, 10)):
        result = cli("trigger", "run-once", "--json")
    assert result.exit_code == 0, result.output
    assert "birthday" not in result.output
    assert trigger_messages(engine, "birthday").height == 0


def test_while_one_process_runs_the_scheduler_another_does_not(engine: Engine) -> None:
    add_member(engine, 1, birthday=date(1990, 6, 13))
    with scheduler_lock(engine) as mine:
        assert mine
        with at(local(2026, 6, 10)):
            assert run_once(engine, now=local(2026, 6, 10)) is None
    assert trigger_messages(engine, "birthday").height == 0
    _run(engine, local(2026, 6, 10))
    assert trigger_messages(engine, "birthday").height == 1


def test_the_background_pass_runs_at_once_then_every_interval(engine: Engine) -> None:
    start = local(2026, 6, 10)
    assert due(None, start, 900)
    assert not due(start, start + timedelta(seconds=899), 900)
    assert due(start, start + timedelta(seconds=900), 900)
    assert not due(None, start, 0)
    add_member(engine, 1, birthday=date(1990, 6, 13))
    with at(start):
        scheduled_pass(engine, now=start)
    assert trigger_messages(engine, "birthday").height == 1
