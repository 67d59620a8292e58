"""The rules in force, parsed from settings into typed values: windows, caps, cool-down.

Which frequency cap applies to whom (TIDINGS_CAPS, by default
`default=4/30d;active=1/7d+triggers;gold=2/7d`):

- a member whose tier (bronze, silver, gold) has a rule gets that rule: the tier is what the
  retailer pays attention to, so `gold=2/7d` lets the best members hear more, not less;
- otherwise a member whose lifecycle stage (new, active, dormant, lapsed, never) has a rule
  gets that one;
- otherwise the `default` rule (ordinary members); without one, the member has no cap.

A cap counts marketing messages (campaigns) and trigger messages together, over a rolling
window ending at the moment a message would go. A rule written with `+triggers`
(`active=1/7d+triggers`) limits campaigns only and lets event triggers through beyond it. The
articles give active members "one a week plus event triggers", so an `active` rule always
lets triggers through, written with `+triggers` or not. Transactional messages and replies
never count and are never capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from tidings.config import Settings
from tidings.profiles.rfm import STAGES, TIERS

MINUTES_PER_DAY = 24 * 60
DEFAULT_SELECTOR = "default"
TRIGGERS_SUFFIX = "+triggers"
# The articles: "活跃会员: 每周1次+事件触发" (active members: once a week plus event triggers).
TRIGGERS_BEYOND_CAP_ALWAYS = frozenset({"active"})
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_CAP = re.compile(r"^(?P<limit>\d+)\s*/\s*(?P<window>\S+)$")
_WINDOW = re.compile(r"^(\d+)d$")


class PolicyError(ValueError):
    """A policy setting or a candidate frame that cannot be used as given."""


class CandidateKind(StrEnum):
    """What a candidate message is; it decides which rules apply to it."""

    MARKETING = "marketing"
    TRIGGER = "trigger"
    TRANSACTIONAL = "transactional"
    REPLY = "reply"  # an answer to the member's own message


# Marketing and triggers need consent, respect the send window, caps and cool-downs.
PROMOTIONAL_KINDS = frozenset({CandidateKind.MARKETING, CandidateKind.TRIGGER})
PRIORITY_BY_KIND = {
    CandidateKind.REPLY: 300,
    CandidateKind.TRANSACTIONAL: 300,
    CandidateKind.TRIGGER: 200,
    CandidateKind.MARKETING: 100,
}


@dataclass(frozen=True)
class DailyWindow:
    """A stretch of local time each day, [start, end) in minutes after midnight; may wrap."""

    start_minute: int
    end_minute: int

    @classmethod
    def parse(cls, text: str, *, setting: str) -> DailyWindow:
        """Parses 'HH:MM-HH:MM' (end exclusive; 24:00 allowed as an end)."""
        parts = text.strip().split("-")
        hint = f"{setting}: '{text}' — write it as HH:MM-HH:MM, e.g. 08:00-20:00"
        if len(parts) != 2:
            raise PolicyError(hint)
        start, end = (_minute_of(part.strip(), hint=hint) for part in parts)
        if start == MINUTES_PER_DAY:
            raise PolicyError(f"{setting}: '{text}' — a window starts before 24:00")
        if start == end:
            raise PolicyError(f"{setting}: '{text}' — the start and the end are the same time")
        return cls(start_minute=start, end_minute=end)

    def intervals(self) -> tuple[tuple[int, int], ...]:
        """The window as non-wrapping [start, end) minute intervals within one day."""
        if self.start_minute < self.end_minute:
            return ((self.start_minute, self.end_minute),)
        pieces = [(self.start_minute, MINUTES_PER_DAY)]
        if self.end_minute > 0:
            pieces.insert(0, (0, self.end_minute))
        return tuple(pieces)

    def contains(self, minute: float) -> bool:
        """Tells whether a local minute of the day (fractions allowed) lies inside."""
        return any(start <= minute < end for start, end in self.intervals())

    def __str__(self) -> str:
        return f"{_clock(self.start_minute)}–{_clock(self.end_minute)}"


def _minute_of(text: str, *, hint: str) -> int:
    match = _CLOCK.match(text)
    if match is None:
        raise PolicyError(hint)
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise PolicyError(hint)
    return hours * 60 + minutes


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True)
class CapRule:
    """At most `limit` messages in any `window_days` days for the members it selects."""

    selector: str
    limit: int
    window_days: int
    triggers_beyond_cap: bool

    @property
    def window(self) -> timedelta:
        """The rolling window as a duration."""
        return timedelta(days=self.window_days)

    @property
    def who(self) -> str:
        """The members the rule is for, in words."""
        if self.selector == DEFAULT_SELECTOR:
            return "ordinary members"
        return f"{self.selector} members"

    @property
    def counted(self) -> str:
        """What the rule counts, in words."""
        return (
            "marketing messages" if self.triggers_beyond_cap else "marketing and trigger messages"
        )

    def __str__(self) -> str:
        text = f"{self.limit} per {self.window_days} days"
        return text + (" + triggers" if self.triggers_beyond_cap else "")


def parse_caps(text: str, *, setting: str = "TIDINGS_CAPS") -> tuple[CapRule, ...]:
    """Parses 'selector=limit/Nd[+triggers];...' into cap rules, one per selector."""
    rules: dict[str, CapRule] = {}
    for raw in text.split(";"):
        entry = raw.strip()
        if not entry:
            continue
        rule = _parse_cap(entry, setting=setting)
        if rule.selector in rules:
            raise PolicyError(f"{setting}: '{rule.selector}' has two rules; keep one")
        rules[rule.selector] = rule
    return tuple(rules.values())


def _parse_cap(entry: str, *, setting: str) -> CapRule:
    selector, equals, body = (part.strip() for part in entry.partition("="))
    selector = selector.lower()
    if not equals or not selector:
        raise PolicyError(f"{setting}: '{entry}' — write each rule as selector=limit/window")
    known = (DEFAULT_SELECTOR, *TIERS, *STAGES)
    if selector not in known:
        raise PolicyError(
            f"{setting}: '{entry}' — '{selector}' is not default, a tier ({', '.join(TIERS)}) "
            f"or a lifecycle stage ({', '.join(STAGES)})"
        )
    triggers = body.lower().endswith(TRIGGERS_SUFFIX)
    if triggers:
        body = body[: -len(TRIGGERS_SUFFIX)].strip()
    match = _CAP.match(body)
    if match is None:
        raise PolicyError(f"{setting}: '{entry}' — write the cap as limit/window, e.g. 4/30d")
    window = _WINDOW.match(match.group("window").lower())
    if window is None or int(window.group(1)) == 0:
        raise PolicyError(f"{setting}: '{entry}' — the window must be like 7d or 30d")
    limit = int(match.group("limit"))
    if limit == 0:
        raise PolicyError(f"{setting}: '{entry}' — the limit must be at least 1")
    return CapRule(
        selector=selector,
        limit=limit,
        window_days=int(window.group(1)),
        triggers_beyond_cap=triggers or selector in TRIGGERS_BEYOND_CAP_ALWAYS,
    )


@dataclass(frozen=True)
class PolicyRules:
    """Every rule that decides whether and when a member may receive a message."""

    send_window: DailyWindow
    quiet_hours: DailyWindow
    caps: tuple[CapRule, ...]
    offer_cooldown_days: int
    no_marketing_on_holidays: bool
    default_timezone: str

    def __post_init__(self) -> None:
        if self.offer_cooldown_days < 0:
            raise PolicyError(
                f"TIDINGS_OFFER_COOLDOWN_DAYS: {self.offer_cooldown_days} — use 0 (no cool-down) "
                "or a positive number of days"
            )
        check_timezone(self.default_timezone, setting="TIDINGS_DEFAULT_TIMEZONE")
        quiet = self.quiet_hours
        if all(quiet.contains(minute) for minute in _window_minutes(self.send_window)):
            raise PolicyError(
                f"TIDINGS_SEND_WINDOW: {self.send_window} lies within the quiet hours {quiet}, "
                "so no marketing could ever be sent; move one of them"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyRules:
        """Reads the rules from settings; a setting that cannot be used raises PolicyError."""
        return cls(
            send_window=DailyWindow.parse(settings.send_window, setting="TIDINGS_SEND_WINDOW"),
            quiet_hours=DailyWindow.parse(settings.quiet_hours, setting="TIDINGS_QUIET_HOURS"),
            caps=parse_caps(settings.caps),
            offer_cooldown_days=settings.offer_cooldown_days,
            no_marketing_on_holidays=settings.no_marketing_on_holidays,
            default_timezone=settings.default_timezone,
        )

    @property
    def offer_cooldown(self) -> timedelta:
        """The cool-down between two offers of the same type."""
        return timedelta(days=self.offer_cooldown_days)

    def cap_for(self, *, tier: str | None, lifecycle_stage: str | None) -> CapRule | None:
        """The cap of a member: their tier's rule, else their stage's, else the default."""
        by_selector = {rule.selector: rule for rule in self.caps}
        for selector in (tier, lifecycle_stage, DEFAULT_SELECTOR):
            if selector is not None and selector in by_selector:
                return by_selector[selector]
        return None

    def cap_index(self) -> pl.Expr:
        """Index into `caps` of each row's rule (from `tier` and `lifecycle_stage`), or null."""
        index: pl.Expr = pl.lit(None, dtype=pl.Int32)
        # Built from the lowest precedence up, so the tier's rule is checked first.
        for column, names in (("lifecycle_stage", STAGES), ("tier", TIERS)):
            for position, rule in enumerate(self.caps):
                if rule.selector in names:
                    chosen = pl.col(column) == rule.selector
                    index = pl.when(chosen).then(pl.lit(position, dtype=pl.Int32)).otherwise(index)
        for position, rule in enumerate(self.caps):
            if rule.selector == DEFAULT_SELECTOR:
                index = index.fill_null(pl.lit(position, dtype=pl.Int32))
        return index


def _window_minutes(window: DailyWindow) -> list[int]:
    return [m for start, end in window.intervals() for m in range(start, end)]


def check_timezone(name: str, *, setting: str) -> None:
    """Raises PolicyError unless `name` is an IANA timezone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(
            f"{setting}: '{name}' is not an IANA timezone; use a name like Asia/Shanghai"
        ) from None
