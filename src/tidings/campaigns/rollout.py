"""Staged rollout with health gates: release a campaign stage by stage while it stays healthy.

A campaign rolls out in stages of its audience, e.g. 1% → 10% → 100% (each member's stage is
drawn at planning). After a stage is released, once enough receipts are in (a minimum
count, every message of the stage settled, or a wait), its health is checked: delivery rate,
opt-outs and complaints against the gates. A healthy stage releases the next one; a failing
gate pauses the campaign and records why. An operator then resumes (which releases the next
stage: the operator has judged the numbers) or cancels. The dispatcher's housekeeping calls
`advance_rollouts` every few seconds; nothing here commits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tidings.campaigns import promote
from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.campaigns.release import issue_shown
from tidings.campaigns.sources import phone_hashes
from tidings.dispatch import service as dispatch

CONFIDENCE_Z = 1.96  # standard normal quantile of a two-sided 95% interval
GATE_KEYS = {
    "delivery": "delivery_min",
    "opt_out": "opt_out_max",
    "complaint": "complaint_max",
    "min_receipts": "min_receipts",
    "wait": "wait_seconds",
}


class GateError(ValueError):
    """Gate settings that cannot be read."""


@dataclass(frozen=True)
class Gates:
    """The health a stage must show before the next one is released."""

    delivery_min: float = 0.98  # share of receipts that say delivered
    opt_out_max: float = 0.003  # opt-outs per delivered message
    complaint_max: float = 0.001  # complaints per delivered message
    min_receipts: int = 200  # receipts enough to judge a stage ...
    wait_seconds: float = 600.0  # ... or the time after which whatever is in is judged
    promote_winner: bool = False  # later stages go with a variant that beats the control

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Gates:
        """Gates from a campaign's stored settings; missing ones take the defaults."""
        known = {field.name for field in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    @classmethod
    def parse(cls, text: str) -> Gates:
        """Reads 'delivery=0.98,opt_out=0.003,complaint=0.001,min_receipts=200,wait=600'."""
        values: dict[str, Any] = {}
        for entry in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = entry.partition("=")
            key = GATE_KEYS.get(name.strip())
            if key is None:
                raise GateError(f"unknown gate '{name.strip()}'; use {', '.join(GATE_KEYS)}")
            try:
                values[key] = int(value) if key == "min_receipts" else float(value)
            except ValueError:
                raise GateError(f"gate '{entry}': '{value}' is not a number") from None
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        """The gates as stored with the campaign."""
        return asdict(self)


@dataclass(frozen=True)
class StageHealth:
    """What the released stages of a campaign have shown so far."""

    sent: int  # handed to the provider
    delivered: int
    undelivered: int  # failed or expired after being handed over
    pending: int  # released but not yet settled
    opted_out: int
    complained: int

    @property
    def receipts(self) -> int:
        """Messages whose fate is known."""
        return self.delivered + self.undelivered

    @property
    def delivery(self) -> float | None:
        """Share of known fates that are deliveries."""
        return self.delivered / self.receipts if self.receipts else None

    def per_delivered(self, count: int) -> float:
        """A count as a share of delivered messages."""
        return count / self.delivered if self.delivered else 0.0


def stage_health(db_session: Session, campaign: Campaign) -> StageHealth:
    """Counts the released stages' messages by fate, and the opt-outs and complaints since."""
    stage = {"id": campaign.id, "stage": campaign.rollout_stage}
    counts = db_session.execute(
        text(
            "SELECT"
            " SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN state IN ('failed', 'expired') AND attempts > 0 THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN state IN ('queued', 'submitting', 'submitted') THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN attempts > 0 AND state <> 'queued' THEN 1 ELSE 0 END)"
            " FROM messages WHERE campaign_id = :id AND rollout_stage <= :stage"
        ),
        stage,
    ).one()
    delivered, undelivered, pending, sent = (int(value or 0) for value in counts)
    opted_out = db_session.execute(
        text(
            "SELECT COUNT(DISTINCT c.member_id) FROM consent_events c"
            " JOIN messages m ON m.member_id = c.member_id"
            " WHERE m.campaign_id = :id AND m.rollout_stage <= :stage"
            " AND m.submitted_at IS NOT NULL AND c.kind = 'opt_out'"
            " AND c.occurred_at >= m.submitted_at"
        ),
        stage,
    ).scalar_one()
    return StageHealth(
        sent, delivered, undelivered, pending, int(opted_out), _complaints(db_session, campaign)
    )


def _complaints(db_session: Session, campaign: Campaign) -> int:
    """Recipients of the released stages whose phone was suppressed for a complaint since."""
    first = db_session.execute(
        text("SELECT MIN(submitted_at) FROM messages WHERE campaign_id = :id"),
        {"id": campaign.id},
    ).scalar_one()
    if first is None:
        return 0
    complained = db_session.execute(
        text("SELECT phone_hash, created_at FROM suppressions WHERE reason = 'complained'")
    ).all()
    started = _utc(first)
    recent = {phone_hash for phone_hash, at in complained if _utc(at) >= started}
    if not recent:
        return 0
    phones = db_session.execute(
        text(
            "SELECT phone FROM messages WHERE campaign_id = :id AND rollout_stage <= :stage"
            " AND submitted_at IS NOT NULL"
        ),
        {"id": campaign.id, "stage": campaign.rollout_stage},
    ).scalars()
    hashes = phone_hashes(pl.Series(list(phones), dtype=pl.String))
    return int(hashes.is_in(list(recent)).sum())


def _utc(moment: Any) -> datetime:
    """A time read by plain SQL: SQLite gives UTC text without a zone."""
    value = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate: what a small stage can and cannot show."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    scale = 1 + CONFIDENCE_Z**2 / trials
    centre = (rate + CONFIDENCE_Z**2 / (2 * trials)) / scale
    spread = CONFIDENCE_Z * math.sqrt(
        rate * (1 - rate) / trials + CONFIDENCE_Z**2 / (4 * trials**2)
    )
    return max(0.0, centre - spread / scale), min(1.0, centre + spread / scale)


def failures(health: StageHealth, gates: Gates) -> list[str]:
    """Each gate the health fails, in words; empty when healthy.

    A gate fails only when the stage shows it with 95% confidence, so that one undelivered
    message among the dozen of a small first stage does not stop a campaign, while a real
    problem in a stage of thousands does. One undelivered message alone never fails the
    delivery gate: in a first stage of one or two members (1% of a small audience) it is all
    the stage shows, and the next stage is judged with it.
    """
    found = []
    _, delivery_high = wilson(health.delivered, health.receipts)
    if health.undelivered > 1 and delivery_high < gates.delivery_min:
        found.append(
            f"delivery {health.delivery:.1%} is below the {gates.delivery_min:.1%} gate"
            f" ({health.delivered} of {health.receipts} receipts)"
        )
    opt_outs = health.per_delivered(health.opted_out)
    if wilson(health.opted_out, health.delivered)[0] > gates.opt_out_max:
        found.append(
            f"opt-outs {opt_outs:.2%} are above the {gates.opt_out_max:.2%} gate"
            f" ({health.opted_out} of {health.delivered} delivered)"
        )
    complaints = health.per_delivered(health.complained)
    if wilson(health.complained, health.delivered)[0] > gates.complaint_max:
        found.append(
            f"complaints {complaints:.2%} are above the {gates.complaint_max:.2%} gate"
            f" ({health.complained} of {health.delivered} delivered)"
        )
    return found


def ready(health: StageHealth, gates: Gates, *, waited: float) -> bool:
    """Whether enough is known to judge the stage: its messages settled, enough receipts,
    or the wait is over with at least one receipt."""
    if health.sent == 0:  # nothing went (an empty stage): nothing to judge it by
        return health.pending == 0
    if health.pending == 0 or health.receipts >= gates.min_receipts:
        return True
    return waited >= gates.wait_seconds and health.receipts > 0


def release_next_stage(db_session: Session, campaign: Campaign, *, now: datetime) -> int:
    """Releases the campaign's next stage: issues the coupons and links its planned messages
    show and queues them; returns how many."""
    campaign.rollout_stage += 1
    campaign.stage_started_at = now
    db_session.flush()
    issue_shown(db_session, campaign, now=now)
    return dispatch.queue_messages(
        db_session=db_session, campaign_id=campaign.id, up_to_stage=campaign.rollout_stage
    )


def describe_stage(campaign: Campaign) -> str:
    """'stage 1 of 3 (1%)'."""
    stages = campaign.rollout_stages or [100]
    return (
        f"stage {campaign.rollout_stage + 1} of {len(stages)} ({stages[campaign.rollout_stage]}%)"
    )


def _record(campaign: Campaign, health: StageHealth, found: list[str], now: datetime) -> None:
    entry = {
        "stage": campaign.rollout_stage,
        "percent": (campaign.rollout_stages or [100])[campaign.rollout_stage],
        "checked_at": now.isoformat(),
        "sent": health.sent,
        "delivered": health.delivered,
        "receipts": health.receipts,
        "delivery": health.delivery,
        "opted_out": health.opted_out,
        "complained": health.complained,
        "passed": not found,
        "failures": found,
    }
    # A new list, so the JSON column sees the change.
    campaign.rollout_report = [*(campaign.rollout_report or []), entry]


def advance(db_session: Session, campaign: Campaign, *, now: datetime) -> str | None:
    """Checks a running campaign's current stage; releases the next or pauses. Returns what
    it did ('released', 'paused') or None when the stage is not ready to judge."""
    stages = campaign.rollout_stages or [100]
    if campaign.status is not CampaignStatus.RUNNING or campaign.rollout_stage >= len(stages) - 1:
        return None
    gates = Gates.from_json(campaign.gates)
    health = stage_health(db_session, campaign)
    started = campaign.stage_started_at or now
    if not ready(health, gates, waited=(now - started).total_seconds()):
        return None
    found = failures(health, gates)
    _record(campaign, health, found, now)
    if found:
        reason = f"rollout {describe_stage(campaign)} failed its health gates: " + "; ".join(found)
        dispatch.pause(db_session=db_session, campaign_id=campaign.id, reason=reason)
        return "paused"
    if gates.promote_winner:
        promote.promote_winner(db_session=db_session, campaign=campaign, now=now)
    release_next_stage(db_session, campaign, now=now)
    return "released"


def advance_rollouts(*, db_session: Session, now: datetime) -> dict[int, str]:
    """Advances every running campaign with stages still to release; returns what it did."""
    campaigns = db_session.scalars(
        select(Campaign).where(Campaign.status == CampaignStatus.RUNNING)
    ).all()
    done = {}
    for campaign in campaigns:
        outcome = advance(db_session, campaign, now=now)
        if outcome is not None:
            done[campaign.id] = outcome
    return done


def release_pending(*, db_session: Session) -> bool:
    """Whether a running campaign has a stage to release that waits only on its gate check:
    every released message settled, later stages still planned."""
    campaigns = db_session.scalars(
        select(Campaign).where(Campaign.status == CampaignStatus.RUNNING)
    ).all()
    for campaign in campaigns:
        if campaign.rollout_stage >= len(campaign.rollout_stages or [100]) - 1:
            continue
        states = db_session.execute(
            text(
                "SELECT"
                " EXISTS (SELECT 1 FROM messages WHERE campaign_id = :id AND state = 'planned'"
                " AND rollout_stage > :stage),"
                " EXISTS (SELECT 1 FROM messages WHERE campaign_id = :id"
                " AND state IN ('queued', 'submitting', 'submitted') AND rollout_stage <= :stage)"
            ),
            {"id": campaign.id, "stage": campaign.rollout_stage},
        ).one()
        if states[0] and not states[1]:
            return True
    return False
