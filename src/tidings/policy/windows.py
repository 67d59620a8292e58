"""Send windows, quiet hours and public holidays, in each member's own timezone.

A kind of message may go out only at certain local times of day: marketing and triggers
inside the send window and outside quiet hours, transactional messages outside quiet hours,
replies at any time. A time outside moves to the next opening; frames are shifted one
timezone group at a time with Polars expressions, never one row at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar
import polars as pl

from tidings.policy.reasons import SkipReason
from tidings.policy.rules import MINUTES_PER_DAY, CandidateKind, DailyWindow, PolicyRules

MICROSECONDS_PER_MINUTE = 60_000_000
MICROSECONDS_PER_DAY = MINUTES_PER_DAY * MICROSECONDS_PER_MINUTE
# Where a wall-clock opening does not exist (a DST gap), the message waits this long more.
DST_GAP_STEP = timedelta(hours=1)


@dataclass(frozen=True)
class SendWindow:
    """The local times of day a kind of message may go out: [start, end) minute intervals."""

    intervals: tuple[tuple[int, int], ...]

    @property
    def any_time(self) -> bool:
        """Tells whether the window is the whole day."""
        return self.intervals == ((0, MINUTES_PER_DAY),)

    @property
    def first_start(self) -> int:
        """The earliest minute of the day the window opens."""
        return self.intervals[0][0]

    def contains(self, minute: float) -> bool:
        """Tells whether a local minute of the day (fractions allowed) lies inside."""
        return any(start <= minute < end for start, end in self.intervals)

    def __str__(self) -> str:
        if self.any_time:
            return "any time"
        return ", ".join(
            str(DailyWindow(start, end % MINUTES_PER_DAY)) for start, end in self.intervals
        )


def send_window_for(*, kind: str, rules: PolicyRules) -> SendWindow:
    """The local times of day a message of `kind` may go out under `rules`."""
    allowed = [True] * MINUTES_PER_DAY
    if kind != CandidateKind.REPLY:
        allowed = [not rules.quiet_hours.contains(m) for m in range(MINUTES_PER_DAY)]
    if kind in (CandidateKind.MARKETING, CandidateKind.TRIGGER):
        allowed = [a and rules.send_window.contains(m) for m, a in enumerate(allowed)]
    intervals: list[tuple[int, int]] = []
    for minute, ok in enumerate(allowed):
        if not ok:
            continue
        if intervals and intervals[-1][1] == minute:
            intervals[-1] = (intervals[-1][0], minute + 1)
        else:
            intervals.append((minute, minute + 1))
    return SendWindow(intervals=tuple(intervals))


def is_holiday(day: date) -> bool:
    """Tells whether `day` is a public holiday in mainland China (not an ordinary weekend).

    Years the installed calendar does not yet cover have no known holidays.
    """
    return day in chinese_calendar.holidays


def holiday_name(day: date) -> str | None:
    """The Chinese name of the public holiday on `day` (e.g. 国庆节), or None."""
    english = chinese_calendar.holidays.get(day)
    if english is None:
        return None
    return str(chinese_calendar.Holiday(english).chinese)


def next_holiday(after: date) -> date | None:
    """The first public holiday after `after`, or None when the calendar knows of none."""
    later = [day for day in chinese_calendar.holidays if day > after]
    return min(later) if later else None


def _resume_dates() -> dict[date, date]:
    """Maps each public holiday to the first day after it that is not a public holiday."""
    resume: dict[date, date] = {}
    for day in sorted(chinese_calendar.holidays, reverse=True):
        following = day + timedelta(days=1)
        resume[day] = resume.get(following, following)
    return resume


_RESUME = _resume_dates()


def _next_start(tod: pl.Expr, window: SendWindow) -> pl.Expr:
    """Microseconds after local midnight of the next opening (beyond one day: tomorrow)."""
    first = window.first_start * MICROSECONDS_PER_MINUTE + MICROSECONDS_PER_DAY
    chosen: pl.Expr = pl.lit(first, dtype=pl.Int64)
    for start, _end in reversed(window.intervals):
        start_us = start * MICROSECONDS_PER_MINUTE
        chosen = pl.when(tod < start_us).then(pl.lit(start_us, dtype=pl.Int64)).otherwise(chosen)
    return chosen


def _inside(tod: pl.Expr, window: SendWindow) -> pl.Expr:
    inside = pl.lit(False)
    for start, end in window.intervals:
        inside = inside | (
            (tod >= start * MICROSECONDS_PER_MINUTE) & (tod < end * MICROSECONDS_PER_MINUTE)
        )
    return inside


def _localize(naive: pl.Expr, timezone: str) -> pl.Expr:
    """Local wall-clock time to UTC; a time a DST gap skipped moves on by DST_GAP_STEP."""
    zoned = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    later = (naive + DST_GAP_STEP).dt.replace_time_zone(
        timezone, ambiguous="earliest", non_existent="null"
    )
    return zoned.fill_null(later).dt.convert_time_zone("UTC")


def _open_in_zone(frame: pl.DataFrame, *, timezone: str, rules: PolicyRules) -> pl.DataFrame:
    local = pl.col("at").dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    frame = frame.with_columns(_local=local).with_columns(_day=pl.col("_local").dt.truncate("1d"))
    tod = (pl.col("_local") - pl.col("_day")).dt.total_microseconds()
    kind = pl.col("kind")
    inside: pl.Expr = pl.lit(True)
    next_start: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for each in CandidateKind:
        window = send_window_for(kind=each, rules=rules)
        inside = pl.when(kind == each.value).then(_inside(tod, window)).otherwise(inside)
        next_start = (
            pl.when(kind == each.value).then(_next_start(tod, window)).otherwise(next_start)
        )
    quiet = send_window_for(kind=CandidateKind.TRANSACTIONAL, rules=rules)
    in_quiet = (kind != CandidateKind.REPLY.value) & ~_inside(tod, quiet)
    moved = (
        pl.when(inside)
        .then(pl.lit(None, dtype=pl.String))
        .when(in_quiet)
        .then(pl.lit(SkipReason.QUIET_HOURS.value))
        .otherwise(pl.lit(SkipReason.OUTSIDE_SEND_WINDOW.value))
    )
    opening = _localize(pl.col("_day") + pl.duration(microseconds=next_start), timezone)
    frame = frame.with_columns(
        opens_at=pl.when(inside).then(pl.col("at")).otherwise(opening), moved_by=moved
    )
    if rules.no_marketing_on_holidays:
        frame = _skip_holidays(frame, timezone=timezone, rules=rules)
    return frame.drop("_local", "_day")


def _skip_holidays(frame: pl.DataFrame, *, timezone: str, rules: PolicyRules) -> pl.DataFrame:
    """Moves marketing that would open on a public holiday to the first working day's opening."""
    window = send_window_for(kind=CandidateKind.MARKETING, rules=rules)
    local_day = pl.col("opens_at").dt.convert_time_zone(timezone).dt.date()
    resume = local_day.replace_strict(
        list(_RESUME), list(_RESUME.values()), default=None, return_dtype=pl.Date
    )
    on_holiday = (pl.col("kind") == CandidateKind.MARKETING.value) & resume.is_not_null()
    start = pl.duration(minutes=window.first_start)
    opening = _localize(resume.cast(pl.Datetime("us")) + start, timezone)
    return frame.with_columns(
        opens_at=pl.when(on_holiday).then(opening).otherwise(pl.col("opens_at")),
        moved_by=pl.when(on_holiday)
        .then(pl.lit(SkipReason.PUBLIC_HOLIDAY.value))
        .otherwise(pl.col("moved_by")),
    )


def open_times(frame: pl.DataFrame, *, rules: PolicyRules) -> pl.DataFrame:
    """Adds `opens_at`, the first moment at or after `at` that `kind` may go out in `timezone`.

    `frame` needs `at` (datetime UTC), `timezone` (IANA, no nulls) and `kind`. `moved_by` says
    why a row moved (quiet_hours, outside_send_window, public_holiday) and is null otherwise.
    Rows keep their order.
    """
    if frame.height == 0:
        return frame.with_columns(opens_at=pl.col("at"), moved_by=pl.lit(None, dtype=pl.String))
    numbered = frame.with_row_index("_order")
    pieces = [
        _open_in_zone(piece, timezone=str(key[0]), rules=rules)
        for key, piece in numbered.partition_by("timezone", as_dict=True).items()
    ]
    return pl.concat(pieces).sort("_order").drop("_order")
