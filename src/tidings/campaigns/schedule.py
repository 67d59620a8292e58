"""When each member's message should go: the four schedules, read from text and applied in bulk.

- `now`: as soon as the policy allows.
- an ISO time (`2025-12-05T10:00`, read in the brand's timezone unless it names one).
- `best-hour` (today) or `best-hour:2025-12-05`: each member at their profile's best hour, in
  their own timezone, spread over that hour so a popular hour is not one burst.
- `spread:09:00-18:00` (today, brand's timezone) or `spread:ISO-ISO`: evenly across the window.

The policy then moves any time outside the member's send window to the next opening.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from tidings.campaigns.models import ScheduleKind

UTC_TIME = pl.Datetime("us", "UTC")
_CLOCK = r"\d{1,2}:\d{2}"
_ISO = r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?"
_SPREAD_CLOCKS = re.compile(rf"^({_CLOCK})-({_CLOCK})$")
_SPREAD_TIMES = re.compile(rf"^({_ISO})-({_ISO})$")
FALLBACK_HOUR = 10  # local hour for members without a best hour when the audience has none


class ScheduleError(ValueError):
    """A schedule that cannot be read or used."""


@dataclass(frozen=True)
class Schedule:
    """A campaign's schedule: its kind and the times it names (UTC)."""

    kind: ScheduleKind
    at: datetime | None = None  # AT: the time; BEST_HOUR: local midnight of the day
    window_start: datetime | None = None
    window_end: datetime | None = None

    def describe(self, timezone: str) -> str:
        """The schedule in words, in the brand's timezone."""
        zone = ZoneInfo(timezone)
        if self.kind is ScheduleKind.AT and self.at is not None:
            return f"at {self.at.astimezone(zone):%Y-%m-%d %H:%M} ({timezone})"
        if self.kind is ScheduleKind.BEST_HOUR and self.at is not None:
            return f"each member's best hour on {self.at.astimezone(zone):%Y-%m-%d}"
        if self.kind is ScheduleKind.SPREAD and self.window_start and self.window_end:
            start, end = self.window_start.astimezone(zone), self.window_end.astimezone(zone)
            return f"spread evenly from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({timezone})"
        return "now"


def _moment(text: str, zone: ZoneInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise ScheduleError(
            f"'{text}' is not a time; write it as ISO, e.g. 2025-12-05T10:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _on_day(day: date, clock: str, zone: ZoneInfo) -> datetime:
    try:
        at = time.fromisoformat(clock if len(clock) == 5 else f"0{clock}")
    except ValueError:
        raise ScheduleError(f"'{clock}' is not a clock time like 09:00") from None
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def parse_schedule(text: str, *, timezone: str, now: datetime) -> Schedule:
    """Reads `now`, an ISO time, `best-hour[:DATE]` or `spread:FROM-TO` (see the module)."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    value = text.strip()
    if value in ("", "now"):
        return Schedule(ScheduleKind.NOW)
    if value.startswith("best-hour"):
        day_text = value.removeprefix("best-hour").removeprefix(":").strip()
        try:
            day = date.fromisoformat(day_text) if day_text else today
        except ValueError:
            raise ScheduleError(f"'{day_text}' is not a date; write best-hour:2025-12-05") from None
        return Schedule(ScheduleKind.BEST_HOUR, at=_on_day(day, "00:00", zone))
    if value.startswith("spread:"):
        body = value.removeprefix("spread:").strip()
        if match := _SPREAD_CLOCKS.match(body):
            start, end = (_on_day(today, clock, zone) for clock in match.groups())
        elif match := _SPREAD_TIMES.match(body):
            start, end = (_moment(part, zone) for part in match.groups())
        else:
            raise ScheduleError(
                f"'{value}' is not spread:FROM-TO; write spread:09:00-18:00 (today) or "
                "spread:2025-12-05T09:00-2025-12-05T18:00"
            )
        if end <= start:
            raise ScheduleError(f"'{value}': the window ends before it starts")
        return Schedule(ScheduleKind.SPREAD, window_start=start, window_end=end)
    if value.startswith("best") or value.startswith("spread"):
        raise ScheduleError(f"'{value}': write best-hour[:DATE] or spread:FROM-TO")
    try:
        return Schedule(ScheduleKind.AT, at=_moment(value, zone))
    except ScheduleError:
        raise ScheduleError(
            f"schedule '{value}' is not now, an ISO time, best-hour[:DATE] or spread:FROM-TO"
        ) from None


def _local_hour_times(frame: pl.DataFrame, day: date) -> pl.Series:
    """UTC times of `day` at each row's local `_hour` and `_minute`, in the row's timezone.

    Time zones are few: each is one expression over its rows, never a call per member.
    """
    result = pl.Series("desired_at", [None] * frame.height, dtype=UTC_TIME)
    indexed = frame.with_row_index("_row")
    for zone in indexed["timezone"].unique().to_list():
        rows = indexed.filter(pl.col("timezone") == zone)
        local = rows.select(
            pl.datetime(day.year, day.month, day.day, pl.col("_hour"), pl.col("_minute"))
            .dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
            .dt.cast_time_unit("us")
        ).to_series()
        result = result.scatter(rows["_row"], local)
    return result


def desired_times(
    frame: pl.DataFrame, *, schedule: Schedule, now: datetime, order: np.ndarray, timezone: str
) -> pl.Series:
    """The time each row (member_id, timezone, best_hour) asks to go, in UTC.

    `order` is a draw in [0, 1) per row: the minute within the best hour, or the place in
    a spread window, so both are fixed by campaign and member.
    """
    n = frame.height
    if schedule.kind is ScheduleKind.AT and schedule.at is not None:
        return pl.Series("desired_at", [schedule.at] * n, dtype=UTC_TIME) if n else _empty()
    if schedule.kind is ScheduleKind.SPREAD and schedule.window_start and schedule.window_end:
        span = (schedule.window_end - schedule.window_start) / timedelta(microseconds=1)
        # Evenly: the k-th of n members (in draw order) goes at (k + 1/2) / n of the window.
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(order, kind="stable")] = np.arange(n)
        offsets = np.round((rank + 0.5) / max(n, 1) * span).astype(np.int64)
        start = int(schedule.window_start.timestamp() * 1_000_000)
        times = pl.Series("desired_at", start + offsets)
        return pl.from_epoch(times, time_unit="us").dt.replace_time_zone("UTC")
    if schedule.kind is ScheduleKind.BEST_HOUR and schedule.at is not None and n:
        known = frame["best_hour"].drop_nulls()
        usual = int(known.mode().sort()[0]) if known.len() else FALLBACK_HOUR
        day = schedule.at.astimezone(ZoneInfo(timezone)).date()
        zones = frame.select(
            "timezone",
            _hour=pl.col("best_hour").fill_null(usual).clip(0, 23).cast(pl.Int32),
            _minute=pl.Series(order * 60).cast(pl.Int32),
        )
        # A local time that does not exist (a DST gap) goes as soon as the policy allows.
        return _local_hour_times(zones, day).fill_null(now)
    return pl.Series("desired_at", [now] * n, dtype=UTC_TIME) if n else _empty()


def _empty() -> pl.Series:
    return pl.Series("desired_at", [], dtype=UTC_TIME)
