"""Why a member does or does not get a campaign, and when: one sentence.

The policy's reasons are explained by `tidings.policy.explain` from the same decision the
planner made, re-run for this one member against today's history (this campaign's own
messages left out, as at planning). The campaign's own reasons (holdout, an empty field, a
blocked word, a cancel) and what became of a sent message are said here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns import service, sources
from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.campaigns.planner import BLOCKED_PREFIX, HOLDOUT, candidates_of
from tidings.campaigns.spec import plan_spec
from tidings.config import get_settings
from tidings.content.render import SKIP_PREFIX
from tidings.policy.decide import decide
from tidings.policy.explain import explain
from tidings.policy.rules import PolicyRules
from tidings.segments.audience import local_today

UTC_TIME = pl.Datetime("us", "UTC")
SENTENCES = {
    HOLDOUT: (
        "It was not sent: they are in the campaign's {share:.0%} holdout, kept out on purpose"
        " so that the campaign's lift can be measured."
    ),
    "missing_field": (
        "It was not sent: their '{field}' is empty and the template gives no fallback for it."
    ),
    "content": "It was not sent: the message as written for them is blocked ({finding}).",
    "campaign_cancelled": "It was not sent: the campaign was cancelled before it went.",
    "audience": "They are not in this campaign's audience ({audience}).",
    "delivered": "It was delivered on {at} ({timezone}).",
    "submitted": "It was handed to the provider on {at} ({timezone}); no receipt yet.",
    "failed": "It was handed over but not delivered ({code}).",
    "expired": "It expired before it could be delivered ({code}).",
    "unknown": "It was handed to the provider on {at}, which cannot say whether it arrived;"
    " it is never sent again.",
    "paused": " It waits while the campaign is paused: {reason}.",
}


class MemberNotFound(LookupError):
    """No member has the id given."""


def _message(db_session: Session, campaign_id: int, member_id: int) -> dict[str, Any] | None:
    row = db_session.execute(
        text(
            "SELECT state, skip_reason, send_at, timezone, submitted_at, delivered_at, error_code"
            " FROM messages WHERE campaign_id = :c AND member_id = :m"
        ),
        {"c": campaign_id, "m": member_id},
    ).first()
    return dict(row._mapping) if row is not None else None


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


def _local(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return "an unknown time"
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _decision_row(
    db_session: Session, campaign: Campaign, member_id: int, desired: datetime | None
) -> tuple[dict[str, Any] | None, pl.DataFrame]:
    """The policy's decision for this member now, and their history; None if not in audience."""
    settings = get_settings()
    engine = db_session.get_bind()
    assert isinstance(engine, Engine)
    rule, saved = service.audience_rule(db_session, campaign)
    zone = settings.default_timezone
    audience = sources.audience_for(
        engine, rule=rule, saved=saved, today=local_today(zone), timezone=zone
    ).filter(pl.col("member_id") == member_id)
    if audience.height == 0:
        return None, pl.DataFrame()
    now = clock.now()
    suppressed = sources.suppressions(engine)
    audience = audience.with_columns(
        phone_hash=sources.phone_hashes(audience["phone"]),
        _desired=pl.lit(desired or now, dtype=UTC_TIME),
    )
    rules = PolicyRules.from_settings(settings)
    history = sources.history(engine, campaign_id=campaign.id, rules=rules, now=now).filter(
        pl.col("member_id") == member_id
    )
    spec = plan_spec(
        campaign, service.variants_of(db_session=db_session, campaign_id=campaign.id), settings
    )
    candidates = candidates_of(audience, spec, desired="_desired")
    decided = decide(candidates, history=history, suppressions=suppressed, rules=rules, now=now)
    return decided.row(0, named=True), history


def _audience_words(campaign: Campaign) -> str:
    if campaign.segment_name:
        return f"segment '{campaign.segment_name}'"
    return f"rule {campaign.rule}"


def _sent_sentence(message: dict[str, Any], timezone: str) -> str:
    state = str(message["state"])
    at = _local(_time(message["submitted_at"]), timezone)
    if state == "delivered":
        at = _local(_time(message["delivered_at"]) or _time(message["submitted_at"]), timezone)
    return SENTENCES[state].format(at=at, timezone=timezone, code=message["error_code"] or "")


def explain_member(*, db_session: Session, campaign_id: int, member_id: int) -> dict[str, Any]:
    """Says in one sentence whether, when and why not `member_id` gets the campaign."""
    campaign = service.get(db_session=db_session, campaign_id=campaign_id)
    exists = db_session.execute(
        text("SELECT 1 FROM members WHERE id = :m"), {"m": member_id}
    ).first()
    if exists is None:
        raise MemberNotFound(f"there is no member {member_id}")
    settings = get_settings()
    message = _message(db_session, campaign_id, member_id)
    rules = PolicyRules.from_settings(settings)
    zone = str((message or {}).get("timezone") or settings.default_timezone)
    state = str(message["state"]) if message else None
    reason = str(message["skip_reason"]) if message and message["skip_reason"] else None
    if state in ("delivered", "submitted", "failed", "expired", "unknown"):
        sentence = _sent_sentence(message or {}, zone)
    elif reason == HOLDOUT:
        sentence = SENTENCES[HOLDOUT].format(share=campaign.holdout_share)
    elif reason and reason.startswith(SKIP_PREFIX):
        sentence = SENTENCES["missing_field"].format(field=reason.removeprefix(SKIP_PREFIX))
    elif reason and reason.startswith(BLOCKED_PREFIX):
        sentence = SENTENCES["content"].format(finding=reason.removeprefix(BLOCKED_PREFIX))
    elif reason == "campaign_cancelled":
        sentence = SENTENCES["campaign_cancelled"]
    else:
        desired = _time(message["send_at"]) if message else None
        row, history = _decision_row(db_session, campaign, member_id, desired)
        if row is None:
            sentence = SENTENCES["audience"].format(audience=_audience_words(campaign))
        else:
            if reason is not None:  # as recorded at planning, even if today differs
                row = {**row, "decision": "skip", "reason": reason, "send_at": None}
            elif message is not None:
                row = {**row, "decision": "send", "send_at": desired}
            sentence = explain(row, history=history, rules=rules)
    if campaign.status is CampaignStatus.PAUSED and state in ("planned", "queued"):
        sentence += SENTENCES["paused"].format(reason=campaign.status_reason or "by an operator")
    return {
        "member_id": member_id,
        "campaign_id": campaign_id,
        "state": state,
        "explanation": sentence,
    }
