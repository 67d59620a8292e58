"""The send-time check: may a message of this kind land now in the member's local time?

Marketing and trigger messages go only inside the send window and outside quiet hours;
transactional messages only outside quiet hours; replies at any time. The check works per
timezone, not per member: every message of a claimed batch shares the same "now".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tidings.dispatch.models import MessageKind

if TYPE_CHECKING:
    from tidings.dispatch.claims import ClaimedMessage

DAY = timedelta(days=1)


class WindowSettingError(ValueError):
    """A send window or quiet-hours setting cannot be read."""


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """A span of local clock time that may cross midnight, e.g. 22:00-08:00; 00:00-00:00 is
    the whole day."""

    start: time
    end: time

    @classmethod
    def parse_optional(cls, text: str) -> DailyWindow | None:
        """Reads 'HH:MM-HH:MM', or an empty text as no window at all."""
        return cls.parse(text) if text.strip() else None

    @classmethod
    def parse(cls, text: str) -> DailyWindow:
        """Reads 'HH:MM-HH:MM'."""
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise WindowSettingError(
                f"window {text!r} is not HH:MM-HH:MM in local time, e.g. '08:00-20:00'"
            ) from None
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        """Tells whether a local clock time falls inside the window."""
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def _next_at(local: datetime, at: time) -> datetime:
    """The first local moment at clock time `at` that is not before `local`."""
    candidate = datetime.combine(local.date(), at, tzinfo=local.tzinfo)
    return candidate if candidate >= local else candidate + DAY


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """Returns the timezone called `name`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowSettingError(f"unknown timezone {name!r}; use an IANA name") from None


def next_allowed(
    *,
    kind: MessageKind,
    timezone: str,
    now: datetime,
    send_window: DailyWindow,
    quiet_hours: DailyWindow | None,
) -> datetime:
    """Returns `now` if a message of `kind` may land now, else the next moment it may."""
    if kind is MessageKind.REPLY:
        return now
    local = now.astimezone(zone(timezone))
    # Each step moves to the end of the quiet hours or the start of the send window; with
    # two windows the answer is found within a few steps, and at most one day later.
    for _ in range(6):
        clock_time = local.timetz().replace(tzinfo=None)
        if kind is not MessageKind.TRANSACTIONAL and not send_window.contains(clock_time):
            local = _next_at(local, send_window.start)
        elif quiet_hours is not None and quiet_hours.contains(clock_time):
            local = _next_at(local, quiet_hours.end)
        else:
            return local.astimezone(now.tzinfo)
    raise WindowSettingError(
        f"send window {send_window} leaves no time outside quiet hours {quiet_hours}"
    )


def split_by_time(
    claimed: Sequence[ClaimedMessage],
    *,
    now: datetime,
    send_window: DailyWindow,
    quiet_hours: DailyWindow | None,
    default_timezone: str,
) -> tuple[list[ClaimedMessage], list[tuple[int, datetime]], list[int]]:
    """Splits a claim into messages to send now, to defer to a later time, and to expire."""
    ready, deferred, expired = [], [], []
    allowed: dict[tuple[str, str | None], datetime] = {}
    for message in claimed:
        key = (message.kind, message.timezone)
        when = allowed.get(key)
        if when is None:
            when = allowed[key] = next_allowed(
                kind=MessageKind(message.kind),
                timezone=message.timezone or default_timezone,
                now=now,
                send_window=send_window,
                quiet_hours=quiet_hours,
            )
        if message.expires_at is not None and message.expires_at <= max(when, now):
            expired.append(message.id)
        elif when > now:
            deferred.append((message.id, when))
        else:
            ready.append(message)
    return ready, deferred, expired
