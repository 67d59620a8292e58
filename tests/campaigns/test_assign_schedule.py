"""Draws fixed by campaign and member, and the four schedules, without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from tidings.campaigns.assign import Purpose, draws, pick_by_weight, rollout_stage_of
from tidings.campaigns.models import ScheduleKind
from tidings.campaigns.schedule import ScheduleError, desired_times, parse_schedule

NOW = datetime(2025, 12, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
MEMBERS = np.arange(1, 200_001, dtype=np.int64)


def test_draws_are_the_same_on_every_run_and_version() -> None:
    # Pure 64-bit arithmetic: these numbers must never change, or plans would change.
    got = draws(7, np.array([1, 2, 1_000_000]), Purpose.HOLDOUT)
    again = draws(7, np.array([1_000_000, 1, 2]), Purpose.HOLDOUT)
    assert got.tolist() == [again[1], again[2], again[0]]
    assert got.round(12).tolist() == pytest.approx(EXPECTED_HOLDOUT_DRAWS, abs=1e-12)


def test_purposes_and_campaigns_draw_independently() -> None:
    holdout = draws(1, MEMBERS, Purpose.HOLDOUT) < 0.1
    variant_b = draws(1, MEMBERS, Purpose.VARIANT) < 0.5
    other_campaign = draws(2, MEMBERS, Purpose.HOLDOUT) < 0.1
    assert holdout.mean() == pytest.approx(0.1, abs=0.003)
    # Held-out members are as often B as everyone else, and another campaign holds out others.
    assert variant_b[holdout].mean() == pytest.approx(0.5, abs=0.01)
    assert (holdout & other_campaign).mean() == pytest.approx(0.01, abs=0.002)


def test_weights_and_rollout_stages_split_the_audience_as_asked() -> None:
    picked = pick_by_weight(draws(3, MEMBERS, Purpose.VARIANT), [2, 1, 1])
    shares = np.bincount(picked) / MEMBERS.size
    assert shares == pytest.approx([0.5, 0.25, 0.25], abs=0.005)
    stages = rollout_stage_of(draws(3, MEMBERS, Purpose.ROLLOUT), [1, 10, 100])
    assert np.bincount(stages) / MEMBERS.size == pytest.approx([0.01, 0.09, 0.9], abs=0.003)


def test_schedules_are_read_with_their_mistakes_explained() -> None:
    assert parse_schedule("now", timezone="Asia/Shanghai", now=NOW).kind is ScheduleKind.NOW
    at = parse_schedule("2025-12-06T09:30", timezone="Asia/Shanghai", now=NOW)
    assert at.kind is ScheduleKind.AT and at.at == datetime(2025, 12, 6, 1, 30, tzinfo=UTC)
    spread = parse_schedule("spread:09:00-18:00", timezone="Asia/Shanghai", now=NOW)
    assert spread.window_start == datetime(2025, 12, 5, 1, 0, tzinfo=UTC)
    assert spread.window_end == datetime(2025, 12, 5, 10, 0, tzinfo=UTC)
    full = parse_schedule(
        "spread:2025-12-06T09:00-2025-12-06T12:00", timezone="Asia/Shanghai", now=NOW
    )
    assert full.window_end - full.window_start == timedelta(hours=3)  # type: ignore[operator]
    with pytest.raises(ScheduleError, match="the window ends before it starts"):
        parse_schedule("spread:18:00-09:00", timezone="Asia/Shanghai", now=NOW)
    with pytest.raises(ScheduleError, match="best-hour:2025-12-05"):
        parse_schedule("best-hour:tomorrow", timezone="Asia/Shanghai", now=NOW)


def test_best_hour_sends_each_member_within_their_hour_in_their_zone() -> None:
    schedule = parse_schedule("best-hour:2025-12-06", timezone="Asia/Shanghai", now=NOW)
    frame = pl.DataFrame(
        {
            "member_id": [1, 2, 3, 4],
            "timezone": ["Asia/Shanghai", "Asia/Shanghai", "Asia/Urumqi", "Asia/Shanghai"],
            "best_hour": [9, 15, 9, None],
        }
    )
    order = draws(5, frame["member_id"].to_numpy(), Purpose.SPREAD)
    times = desired_times(frame, schedule=schedule, now=NOW, order=order, timezone="Asia/Shanghai")
    local = [t.astimezone(ZoneInfo(z)) for t, z in zip(times, frame["timezone"], strict=True)]
    assert [(t.day, t.hour) for t in local] == [(6, 9), (6, 15), (6, 9), (6, 9)]
    # The member without a best hour goes at the audience's most common one (9).
    assert local[0].minute == int(order[0] * 60)


def test_spread_places_members_evenly_across_the_window() -> None:
    schedule = parse_schedule("spread:10:00-12:00", timezone="Asia/Shanghai", now=NOW)
    frame = pl.DataFrame({"member_id": list(range(1, 121)), "timezone": ["Asia/Shanghai"] * 120})
    order = draws(9, frame["member_id"].to_numpy(), Purpose.SPREAD)
    times = desired_times(frame, schedule=schedule, now=NOW, order=order, timezone="UTC")
    ordered = times.sort()
    gaps = ordered.diff().drop_nulls().dt.total_seconds().unique().to_list()
    assert gaps == [60]  # 120 members over two hours: one a minute
    assert ordered[0].astimezone(SHANGHAI).strftime("%H:%M:%S") == "10:00:30"


EXPECTED_HOLDOUT_DRAWS = [0.166830016158, 0.739892159035, 0.380118844196]
