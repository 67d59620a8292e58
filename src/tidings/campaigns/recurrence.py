"""The schedule language of recurring campaigns, and the occurrences a schedule names.

    every wed 10:00          each Wednesday at 10:00 (mon tue wed thu fri sat sun, or names
    every mon,thu 09:30      in full: monday, ...); several days by commas
    every day 08:30          each day
    monthly 1 09:00          the first day of each month (1 to 28) at 09:00
    monthly last 18:00       the last day of each month

Times are of the brand's timezone; the time may be left out (09:00). `every` may be left out
of a weekly schedule ("wed 10:00").
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tidings.campaigns.spec import CampaignError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = {name: i for i, name in enumerate(calendar.day_name)}
DEFAULT_TIME = time(9, 0)
EXAMPLES = "every wed 10:00, every mon,thu 09:30, every day 08:30, monthly 1 09:00"
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


class RecurrenceError(ValueError):
    """A schedule that cannot be read (the message shows what can)."""


@dataclass(frozen=True)
class Recurrence:
    """Weekdays (0 is Monday) or a day of the month (-1: the last), and a local time."""

    at: time
    weekdays: frozenset[int] = frozenset()
    month_day: int | None = None

    def on(self, day: date) -> bool:
        """Whether the schedule names `day`."""
        if self.month_day is None:
            return day.weekday() in self.weekdays
        last = calendar.monthrange(day.year, day.month)[1]
        return day.day == (last if self.month_day == -1 else self.month_day)

    def occurrences(self, start: datetime, end: datetime, timezone: str) -> list[datetime]:
        """The occurrences after `start` up to and including `end`, in UTC, oldest first."""
        zone = ZoneInfo(timezone)
        day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        found = []
        while day <= last:  # days of a window, not members
            moment = datetime.combine(day, self.at, tzinfo=zone).astimezone(UTC)
            if self.on(day) and start < moment <= end:
                found.append(moment)
            day += timedelta(days=1)
        return found


def _time(text: str | None, whole: str) -> time:
    if text is None:
        return DEFAULT_TIME
    match = _TIME.match(text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise RecurrenceError(f"schedule '{whole}': '{text}' is not a time like 10:00")
    return time(int(match.group(1)), int(match.group(2)))


def _weekday(name: str, whole: str) -> int:
    key = name.lower()
    if key in DAYS:
        return DAYS.index(key)
    full = {n.lower(): i for n, i in FULL_DAYS.items()}
    if key in full:
        return full[key]
    raise RecurrenceError(
        f"schedule '{whole}': '{name}' is not a day; use mon, tue, wed, thu, fri, sat, sun or day"
    )


def parse_recurrence(text: str) -> Recurrence:
    """Reads a schedule such as "every wed 10:00" or "monthly 1 09:00"."""
    words = text.strip().lower().replace(" at ", " ").split()
    if words and words[0] == "every":
        words = words[1:]
    if not words or len(words) > 3:
        raise RecurrenceError(f"schedule '{text}' is not one of: {EXAMPLES}")
    if words[0] == "monthly":
        if len(words) < 2:
            raise RecurrenceError(f"schedule '{text}' needs the day: monthly 1 09:00")
        if words[1] == "last":
            day = -1
        elif words[1].isdigit() and 1 <= int(words[1]) <= 28:
            day = int(words[1])
        else:
            raise RecurrenceError(
                f"schedule '{text}': a monthly day is 1 to 28 or last (every month has those)"
            )
        return Recurrence(_time(words[2] if len(words) > 2 else None, text), month_day=day)
    if len(words) > 2:
        raise RecurrenceError(f"schedule '{text}' is not one of: {EXAMPLES}")
    at = _time(words[1] if len(words) > 1 else None, text)
    if words[0] == "day":
        return Recurrence(at, weekdays=frozenset(range(7)))
    return Recurrence(at, weekdays=frozenset(_weekday(w, text) for w in words[0].split(",")))


def checked(text: str) -> str:
    """The schedule as a campaign stores it, or a CampaignError saying what to write."""
    try:
        parse_recurrence(text)
    except RecurrenceError as error:
        raise CampaignError(str(error)) from None
    return " ".join(text.strip().lower().split())
