"""Answers "why did this member not get this message?" in one sentence, with the facts behind it.

`explain` takes one row of `decide`'s result (a mapping, e.g. `frame.row(i, named=True)`) and,
for caps, cool-downs and duplicates, the member's history, so it can name the messages that
filled the cap. It touches no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from tidings.policy.reasons import (
    DEFERRED_SENTENCE,
    FACT_SENTENCES,
    REASON_SENTENCES,
    SENT_SENTENCE,
    SKIPPED_SENTENCE,
    SkipReason,
)
from tidings.policy.rules import CandidateKind, CapRule, PolicyRules
from tidings.policy.windows import holiday_name, open_times, send_window_for


def _local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def _day(moment: datetime, timezone: str) -> str:
    local = _local(moment, timezone)
    return f"{local.month}月{local.day}日"


def _clock(moment: datetime, timezone: str) -> str:
    return _local(moment, timezone).strftime("%H:%M")


def _when(moment: datetime, timezone: str) -> str:
    return f"{_day(moment, timezone)} {_clock(moment, timezone)}"


def _member_history(history: pl.DataFrame | None, member_id: object) -> pl.DataFrame | None:
    if history is None or history.height == 0:
        return None
    return history.filter(pl.col("member_id") == member_id)


def _asked(
    row: Mapping[str, object], *, rules: PolicyRules
) -> tuple[datetime, datetime, str | None]:
    """The time asked for, the window's opening at or after it, and why it moved."""
    desired = row["desired_at"]
    assert isinstance(desired, datetime)
    frame = pl.DataFrame(
        {"at": [desired.astimezone(UTC)], "kind": [row["kind"]], "timezone": [_zone(row, rules)]}
    )
    opened = open_times(frame, rules=rules).row(0, named=True)
    return desired, opened["opens_at"], opened["moved_by"]


def _zone(row: Mapping[str, object], rules: PolicyRules) -> str:
    zone = row.get("timezone")
    return zone if isinstance(zone, str) else rules.default_timezone


def _window_facts(reason: str, row: Mapping[str, object], *, rules: PolicyRules) -> str:
    desired, opening, _moved = _asked(row, rules=rules)
    zone = _zone(row, rules)
    if reason == SkipReason.PUBLIC_HOLIDAY:
        day = _local(opening, zone).date() - timedelta(days=1)
        name = holiday_name(day) or "public holiday"
        return FACT_SENTENCES[SkipReason.PUBLIC_HOLIDAY].format(
            day=_day(desired, zone), holiday=name, timezone=zone
        )
    window = send_window_for(kind=str(row["kind"]), rules=rules)
    return FACT_SENTENCES[SkipReason(reason)].format(
        local=_clock(desired, zone), window=window, quiet=rules.quiet_hours, timezone=zone
    )


def _expired_facts(row: Mapping[str, object], *, rules: PolicyRules) -> str:
    _desired, _opening, moved = _asked(row, rules=rules)
    zone = _zone(row, rules)
    expires = row.get("expires_at")
    if moved is None:
        shown = _when(expires, zone) if isinstance(expires, datetime) else "before it could go"
        return f"it expired at {shown}, before it could go"
    cause = _window_facts(moved, row, rules=rules)
    return FACT_SENTENCES[SkipReason.EXPIRED].format(cause=cause)


def _counted(frame: pl.DataFrame, rule: CapRule) -> pl.DataFrame:
    kinds = [CandidateKind.MARKETING.value]
    if not rule.triggers_beyond_cap:
        kinds.append(CandidateKind.TRIGGER.value)
    return frame.filter(pl.col("kind").is_in(kinds))


def _cap_facts(
    reason: str, row: Mapping[str, object], *, history: pl.DataFrame | None, rules: PolicyRules
) -> str:
    tier, stage = row.get("tier"), row.get("lifecycle_stage")
    rule = rules.cap_for(
        tier=tier if isinstance(tier, str) else None,
        lifecycle_stage=stage if isinstance(stage, str) else None,
    )
    past = _member_history(history, row["member_id"])
    if rule is None or past is None:
        return REASON_SENTENCES[SkipReason(reason)].rstrip(".").lower()
    _desired, opening, _moved = _asked(row, rules=rules)
    zone = _zone(row, rules)
    window = _counted(past, rule).filter(
        (pl.col("sent_at") > opening - rule.window) & (pl.col("sent_at") <= opening)
    )
    latest = window["sent_at"].max()
    facts = {"counted": rule.counted, "days": rule.window_days, "who": rule.who}
    if reason == SkipReason.LOST_TO_PRIORITY:
        taken = f", the latest on {_day(latest, zone)}" if isinstance(latest, datetime) else ""
        return FACT_SENTENCES[SkipReason.LOST_TO_PRIORITY].format(
            limit=rule.limit, latest=taken, **facts
        )
    if not isinstance(latest, datetime):
        return REASON_SENTENCES[SkipReason.FREQUENCY_CAP].rstrip(".").lower()
    return FACT_SENTENCES[SkipReason.FREQUENCY_CAP].format(
        count=window.height, latest=_day(latest, zone), **facts
    )


def _cooldown_facts(
    row: Mapping[str, object], *, history: pl.DataFrame | None, rules: PolicyRules
) -> str:
    past = _member_history(history, row["member_id"])
    offer = row.get("offer_type")
    if past is None or not isinstance(offer, str):
        return REASON_SENTENCES[SkipReason.OFFER_COOLDOWN].rstrip(".").lower()
    _desired, opening, _moved = _asked(row, rules=rules)
    near = past.filter(
        (pl.col("offer_type") == offer)
        & ((pl.col("sent_at") - opening).abs() < rules.offer_cooldown)
    )
    latest = near["sent_at"].max()
    if not isinstance(latest, datetime):
        return REASON_SENTENCES[SkipReason.OFFER_COOLDOWN].rstrip(".").lower()
    return FACT_SENTENCES[SkipReason.OFFER_COOLDOWN].format(
        offer=offer, latest=_day(latest, _zone(row, rules)), days=rules.offer_cooldown_days
    )


def _duplicate_facts(row: Mapping[str, object], *, history: pl.DataFrame | None) -> str:
    past = _member_history(history, row["member_id"])
    when = ""
    if past is not None and "campaign_id" in past.columns:
        earlier = past.filter(pl.col("campaign_id") == row.get("campaign_id"))["sent_at"].min()
        if isinstance(earlier, datetime):
            zone = row.get("timezone")
            when = f" (sent {_day(earlier, zone if isinstance(zone, str) else 'UTC')})"
    return FACT_SENTENCES[SkipReason.DUPLICATE_IN_CAMPAIGN].format(when=when)


def _facts(row: Mapping[str, object], *, history: pl.DataFrame | None, rules: PolicyRules) -> str:
    reason = str(row["reason"])
    if reason in (SkipReason.FREQUENCY_CAP, SkipReason.LOST_TO_PRIORITY):
        return _cap_facts(reason, row, history=history, rules=rules)
    if reason == SkipReason.OFFER_COOLDOWN:
        return _cooldown_facts(row, history=history, rules=rules)
    if reason == SkipReason.DUPLICATE_IN_CAMPAIGN:
        return _duplicate_facts(row, history=history)
    if reason == SkipReason.EXPIRED:
        return _expired_facts(row, rules=rules)
    if reason in (
        SkipReason.OUTSIDE_SEND_WINDOW,
        SkipReason.QUIET_HOURS,
        SkipReason.PUBLIC_HOLIDAY,
    ):
        return _window_facts(reason, row, rules=rules)
    return FACT_SENTENCES[SkipReason(reason)]


def explain(
    row: Mapping[str, object], *, history: pl.DataFrame | None = None, rules: PolicyRules
) -> str:
    """One sentence saying whether, when and why not a decided message goes to its member."""
    zone = _zone(row, rules)
    send_at = row.get("send_at")
    if row.get("decision") == "send" and isinstance(send_at, datetime):
        return SENT_SENTENCE.format(at=_when(send_at, zone), timezone=zone)
    facts = _facts(row, history=history, rules=rules)
    if row.get("decision") == "defer" and isinstance(send_at, datetime):
        return DEFERRED_SENTENCE.format(at=_when(send_at, zone), timezone=zone, facts=facts)
    return SKIPPED_SENTENCE.format(facts=facts)
