"""Send windows, quiet hours and public holidays, in each member's own timezone.

A kind of message may go out only at certain local times of day: marketing and triggers
inside the send window and outside quiet hours, transactional messages outside quiet hours,
replies at any time. A time outside moves to the next opening; frames are shifted one
timezone group at a time with Polars expressions, never one row at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar
import numpy as np
import polars as pl

from tidings.policy.reasons import SkipReason
from tidings.policy.rules import MINUTES_PER_DAY, CandidateKind, DailyWindow, PolicyRules

MICROSECONDS_PER_MINUTE = 60_000_000
MICROSECONDS_PER_DAY = MINUTES_PER_DAY * MICROSECONDS_PER_MINUTE
MOVE_REASONS = (SkipReason.OUTSIDE_SEND_WINDOW, SkipReason.QUIET_HOURS, SkipReason.PUBLIC_HOLIDAY)
_MOVE_CODE = {reason: code for code, reason in enumerate(MOVE_REASONS)}
# Where a wall-clock opening does not exist (a DST gap), the message waits this long more.
DST_GAP_STEP = timedelta(hours=1)
FIXED_OFFSET_STEP = 15 * MICROSECONDS_PER_MINUTE  # how finely a zone's offset is sampled
FIXED_OFFSET_MARGIN = 2 * MICROSECONDS_PER_DAY  # more than any zone's offset ever jumps
FIXED_OFFSET_SPAN = 400 * MICROSECONDS_PER_DAY  # longer stretches go to the timezone database


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


@lru_cache(maxsize=64)
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


def _resume_days() -> tuple[np.ndarray, np.ndarray]:
    """Public holidays and, for each, the first day after it that is not one (days since 1970)."""
    resume: dict[date, date] = {}
    for day in sorted(chinese_calendar.holidays, reverse=True):
        following = day + timedelta(days=1)
        resume[day] = resume.get(following, following)
    epoch = date(1970, 1, 1)
    days = sorted(resume)
    return (
        np.array([(day - epoch).days for day in days], dtype=np.int64),
        np.array([(resume[day] - epoch).days for day in days], dtype=np.int64),
    )


_HOLIDAYS, _RESUME = _resume_days()
# Windows by kind: 0 marketing and triggers, 1 transactional, 2 replies.
_SLOTS = {
    CandidateKind.MARKETING: 0,
    CandidateKind.TRIGGER: 0,
    CandidateKind.TRANSACTIONAL: 1,
    CandidateKind.REPLY: 2,
}
_SLOT_KINDS = (CandidateKind.MARKETING, CandidateKind.TRANSACTIONAL, CandidateKind.REPLY)


@dataclass(frozen=True)
class _ZoneClock:
    """Turns UTC into one timezone's wall clock and back, with plain arithmetic where it may.

    Most zones keep one offset for months, so where the offset is the same throughout the
    stretch of time in play (`offset`, fixed in [low, high], UTC microseconds), a wall-clock
    time is the UTC time plus the offset; elsewhere the timezone database answers.
    """

    timezone: str
    offset: int | None  # microseconds east of UTC throughout [low, high], or None
    low: int
    high: int

    @classmethod
    def around(cls, timezone: str, at: np.ndarray) -> _ZoneClock:
        """A clock for times near `at` (UTC microseconds), openings a day or two later included."""
        low = int(at.min()) - FIXED_OFFSET_MARGIN
        high = int(at.max()) + FIXED_OFFSET_MARGIN + MICROSECONDS_PER_DAY
        if high - low > FIXED_OFFSET_SPAN:
            return cls(timezone, None, low, high)
        # A zone never changes its offset twice within one step, so equal samples mean no change.
        samples = np.arange(low, high + FIXED_OFFSET_STEP, FIXED_OFFSET_STEP, dtype=np.int64)
        offsets = cls(timezone, None, low, high).local(samples) - samples
        fixed = bool((offsets == offsets[0]).all())
        return cls(timezone, int(offsets[0]) if fixed else None, low, high)

    def local(self, utc: np.ndarray) -> np.ndarray:
        """UTC microseconds to local wall-clock microseconds."""
        if self.offset is not None and utc.size and self._inside(utc, margin=0):
            return utc + self.offset
        zoned = pl.from_epoch(pl.Series(utc), time_unit="us").dt.replace_time_zone("UTC")
        local = zoned.dt.convert_time_zone(self.timezone).dt.replace_time_zone(None)
        return local.dt.epoch("us").to_numpy()

    def utc(self, local: np.ndarray) -> np.ndarray:
        """Local wall-clock microseconds to UTC; a DST gap moves on by DST_GAP_STEP."""
        if self.offset is not None and local.size:
            # Far enough inside the fixed stretch, a wall-clock time exists and exists once.
            guess = local - self.offset
            if self._inside(guess, margin=FIXED_OFFSET_MARGIN):
                return guess
        naive = pl.from_epoch(pl.Series(local), time_unit="us")
        zoned = naive.dt.replace_time_zone(self.timezone, ambiguous="earliest", non_existent="null")
        if zoned.null_count():
            later = (naive + DST_GAP_STEP).dt.replace_time_zone(
                self.timezone, ambiguous="earliest", non_existent="null"
            )
            zoned = zoned.fill_null(later)
        return zoned.dt.epoch("us").to_numpy()

    def _inside(self, utc: np.ndarray, *, margin: int) -> bool:
        return int(utc.min()) >= self.low + margin and int(utc.max()) <= self.high - margin


def _next_opening(tod: np.ndarray, window: SendWindow) -> tuple[np.ndarray, np.ndarray]:
    """Whether each local time of day is inside, and the next opening after midnight (us)."""
    inside = np.zeros(tod.shape, dtype=bool)
    following = np.full(
        tod.shape, window.first_start * MICROSECONDS_PER_MINUTE + MICROSECONDS_PER_DAY
    )
    for start, end in reversed(window.intervals):
        start_us, end_us = start * MICROSECONDS_PER_MINUTE, end * MICROSECONDS_PER_MINUTE
        inside |= (tod >= start_us) & (tod < end_us)
        following = np.where(tod < start_us, start_us, following)
    return inside, following


def _open_in_zone(
    at: np.ndarray, slots: np.ndarray, *, timezone: str, rules: PolicyRules
) -> tuple[np.ndarray, np.ndarray]:
    """Openings (UTC us) and move codes (index into MOVE_REASONS, -1) for one timezone's rows."""
    clock = _ZoneClock.around(timezone, at)
    local_us = clock.local(at)
    day = local_us // MICROSECONDS_PER_DAY * MICROSECONDS_PER_DAY
    tod = local_us - day
    inside = np.ones(at.shape, dtype=bool)
    following = np.zeros(at.shape, dtype=np.int64)
    for slot, kind in enumerate(_SLOT_KINDS):
        rows = slots == slot
        window_inside, window_next = _next_opening(
            tod[rows], send_window_for(kind=kind, rules=rules)
        )
        inside[rows], following[rows] = window_inside, window_next
    quiet, _ = _next_opening(tod, send_window_for(kind=CandidateKind.TRANSACTIONAL, rules=rules))
    in_quiet = (slots != _SLOTS[CandidateKind.REPLY]) & ~quiet
    moved = np.where(
        inside,
        -1,
        np.where(
            in_quiet, _MOVE_CODE[SkipReason.QUIET_HOURS], _MOVE_CODE[SkipReason.OUTSIDE_SEND_WINDOW]
        ),
    ).astype(np.int8)
    opens = at.copy()
    local_open = np.where(inside, local_us, day + following)
    outside = np.flatnonzero(~inside)
    if outside.size:
        opens[outside] = clock.utc(local_open[outside])
    if rules.no_marketing_on_holidays:
        marketing = slots == _SLOTS[CandidateKind.MARKETING]
        _skip_holidays(opens, moved, local_open, marketing, clock=clock, rules=rules)
    return opens, moved


def _skip_holidays(
    opens: np.ndarray,
    moved: np.ndarray,
    local_open: np.ndarray,
    marketing: np.ndarray,
    *,
    clock: _ZoneClock,
    rules: PolicyRules,
) -> None:
    """Moves marketing that would open on a public holiday to the first working day's opening."""
    local_day = local_open // MICROSECONDS_PER_DAY
    found = np.searchsorted(_HOLIDAYS, local_day).clip(0, max(_HOLIDAYS.size - 1, 0))
    on_holiday = marketing & (_HOLIDAYS.size > 0) & (_HOLIDAYS[found] == local_day)
    rows = np.flatnonzero(on_holiday)
    if rows.size == 0:
        return
    start = send_window_for(kind=CandidateKind.MARKETING, rules=rules).first_start
    resume = _RESUME[found[rows]] * MICROSECONDS_PER_DAY + start * MICROSECONDS_PER_MINUTE
    opens[rows] = clock.utc(resume)
    moved[rows] = _MOVE_CODE[SkipReason.PUBLIC_HOLIDAY]


def open_times(frame: pl.DataFrame, *, rules: PolicyRules) -> pl.DataFrame:
    """Adds `opens_at`, the first moment at or after `at` that `kind` may go out in `timezone`.

    `frame` needs `at` (datetime UTC), `timezone` (IANA, no nulls) and `kind`. `moved_by` says
    why a row moved (quiet_hours, outside_send_window, public_holiday) and is null otherwise.
    Rows keep their order: each timezone's rows are shifted together and put back in place.
    """
    at = frame["at"].dt.epoch("us").to_numpy()
    slots = frame["kind"].replace_strict(_SLOTS, return_dtype=pl.Int8).to_numpy()
    opens = np.zeros(frame.height, dtype=np.int64)
    moved = np.full(frame.height, -1, dtype=np.int8)
    zones = frame["timezone"].unique().sort()
    # Rows grouped by timezone with one pass over the names (a small code sorts in linear time).
    codes = (
        frame["timezone"]
        .replace_strict(zones, pl.int_range(zones.len(), eager=True), return_dtype=pl.Int16)
        .to_numpy()
    )
    by_zone = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_zone], np.arange(zones.len() + 1))
    for timezone, low, high in zip(zones.to_list(), bounds[:-1], bounds[1:], strict=True):
        index = by_zone[low:high]
        opens[index], moved[index] = _open_in_zone(
            at[index], slots[index], timezone=timezone, rules=rules
        )
    opened = pl.from_epoch(pl.Series(opens), time_unit="us").dt.replace_time_zone("UTC")
    reason = pl.Series(moved).replace_strict(
        list(range(len(MOVE_REASONS))),
        [reason.value for reason in MOVE_REASONS],
        default=None,
        return_dtype=pl.String,
    )
    return frame.with_columns(opens_at=opened, moved_by=reason)
