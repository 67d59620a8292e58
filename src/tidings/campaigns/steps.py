"""A campaign's later steps as the operator writes them: follow-ups ("2d:not-clicked:TEXT")
and countdown steps keyed to a date ("-3d 10:00:RULE:TEXT"), read into values the service
stores; bad input gets an error that says what to write instead."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class StepError(ValueError):
    """A step as written cannot be used (the message says what to change)."""


class Reaction(enum.StrEnum):
    """Who of the step before a step goes to: those who did something, or did not."""

    ALL = "all"
    CLICKED = "clicked"
    NOT_CLICKED = "not-clicked"
    CONVERTED = "converted"
    NOT_CONVERTED = "not-converted"
    REPLIED = "replied"
    NOT_REPLIED = "not-replied"

    @property
    def action(self) -> str:
        """What was done: clicked, converted or replied ("" for all)."""
        return "" if self is Reaction.ALL else self.value.removeprefix("not-")

    @property
    def wanted(self) -> bool:
        """Whether the step goes to those who did the action (False: to those who did not)."""
        return not self.value.startswith("not-")


REACTION_NAMES = frozenset(r.value for r in Reaction)
_DELAY = re.compile(r"^(\d+)\s*([dhm])$")
_OFFSET = re.compile(r"^([+-]?\d+)d(?:\s+(\d{1,2}):(\d{2}))?$")
MINUTES = {"d": 24 * 60, "h": 60, "m": 1}
LONGEST_DELAY = 90 * 24 * 60  # minutes: a follow-up later than a quarter is a new campaign


@dataclass(frozen=True)
class StepDraft:
    """One step as asked for: when (a delay after the step before, or a moment), to whom,
    and with what text."""

    template: str
    after_minutes: int | None = None
    at: datetime | None = None
    reaction: Reaction | None = None
    rule: str | None = None


def reaction_of(text: str) -> Reaction:
    """The reaction named by `text`, or a StepError listing the names there are."""
    try:
        return Reaction(text.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Reaction)
        raise StepError(f"'{text}' is not a reaction; use one of: {names}") from None


def delay_minutes(text: str) -> int:
    """Minutes of a delay like 2d, 12h or 30m."""
    match = _DELAY.match(text.strip().lower())
    if not match:
        raise StepError(f"delay '{text}' is not like 2d, 12h or 30m")
    minutes = int(match.group(1)) * MINUTES[match.group(2)]
    if not 0 < minutes <= LONGEST_DELAY:
        raise StepError(f"delay '{text}' must be more than nothing and at most 90d")
    return minutes


def parse_follow_up(text: str) -> StepDraft:
    """Reads "DELAY:REACTION:TEMPLATE", e.g. "2d:not-clicked:{surname}，优惠明天结束"."""
    pieces = text.split(":", 2)
    if len(pieces) != 3 or not pieces[2].strip():
        raise StepError(
            f"follow-up '{text}' is not DELAY:REACTION:TEMPLATE,"
            " e.g. 2d:not-clicked:{surname}，优惠明天结束"
        )
    return StepDraft(
        template=pieces[2].strip(),
        after_minutes=delay_minutes(pieces[0]),
        reaction=reaction_of(pieces[1]),
    )


def countdown_moment(offset: str, *, day: date, timezone: str) -> datetime:
    """The moment of "-7d 10:00" (7 days before `day` at 10:00 in `timezone`), in UTC."""
    match = _OFFSET.match(offset.strip())
    if not match:
        raise StepError(f"countdown offset '{offset}' is not like -7d 10:00 or 0d 08:00")
    days, hour, minute = int(match.group(1)), int(match.group(2) or 9), int(match.group(3) or 0)
    if hour > 23 or minute > 59:
        raise StepError(f"countdown offset '{offset}' has no such time of day")
    local = datetime.combine(day + timedelta(days=days), time(hour, minute))
    return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def parse_countdown_step(text: str, *, day: date, timezone: str) -> StepDraft:
    """Reads "OFFSET:AUDIENCE:TEMPLATE" of a countdown to `day`, e.g.
    "-3d 10:00:consent == true:{surname}，三天后大促". AUDIENCE is a rule of its own, a
    reaction to the steps before ("0d 08:00:not-converted:..."), both ("RULE;REACTION"), or
    empty: the campaign's rule."""
    match = re.match(r"^([+-]?\d+d(?:\s+\d{1,2}:\d{2})?):(.*?):(.+)$", text.strip(), re.S)
    if not match:
        raise StepError(
            f"countdown step '{text}' is not OFFSET:AUDIENCE:TEMPLATE,"
            " e.g. -3d 10:00:consent == true:{surname}，三天后大促"
        )
    rule, reaction = None, None
    for part in (p.strip() for p in match.group(2).split(";") if p.strip()):
        if part.lower() in REACTION_NAMES:
            reaction = reaction_of(part)
        else:
            rule = part
    return StepDraft(
        template=match.group(3).strip(),
        at=countdown_moment(match.group(1), day=day, timezone=timezone),
        rule=rule,
        reaction=reaction,
    )


def step_fields(
    *, follow_ups: list[str], countdown: str | None, countdown_steps: list[str], timezone: str
) -> list[dict[str, object]]:
    """The steps the command line asks for (countdown steps by time, then follow-ups), as
    the fields of the API's step schema."""
    if countdown_steps and not countdown:
        raise StepError("--countdown-step needs --countdown DATE, the day it counts down to")
    day = None
    if countdown:
        try:
            day = date.fromisoformat(countdown.strip())
        except ValueError:
            raise StepError(f"countdown date '{countdown}' is not like 2026-12-24") from None
    counted = [parse_countdown_step(t, day=day, timezone=timezone) for t in countdown_steps if day]
    drafts = sorted(counted, key=lambda d: d.at or datetime.max.replace(tzinfo=UTC))
    drafts += [parse_follow_up(text) for text in follow_ups]
    return [
        {
            "template": d.template,
            "after": None if d.after_minutes is None else f"{d.after_minutes}m",
            "at": d.at,
            "reaction": d.reaction.value if d.reaction else None,
            "rule": d.rule,
        }
        for d in drafts
    ]
