"""Operations on campaigns: create, plan, send, pause, resume, cancel, and their state.

Lifecycle: a campaign is created as a draft; planning writes its messages (`planned` or
`skipped`) and makes it `scheduled`; sending makes it `running` and queues its first rollout
stage; the dispatcher's housekeeping releases later stages through the health gates
(`campaigns.rollout`) and marks it `completed` when every message is settled. Pause and
resume act at the next claim, also on messages already queued; cancel stops every message
not yet handed to a provider. These functions never commit; the caller does.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine, and_, func, or_, select, text
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns import followups, sources
from tidings.campaigns.models import Campaign, CampaignKind, CampaignStatus, Variant
from tidings.campaigns.phases import PhaseTimer
from tidings.campaigns.planner import (
    CONTENT_KIND,
    audience_fields,
    plan_pieces,
    summarise,
)
from tidings.campaigns.recurrence import checked as checked_recurrence
from tidings.campaigns.release import issue_shown
from tidings.campaigns.rollout import Gates, release_next_stage
from tidings.campaigns.schedule import ScheduleError, parse_schedule
from tidings.campaigns.schemas import CampaignCreate
from tidings.campaigns.spec import (
    CampaignError,
    campaign_fields,
    plan_spec,
    schedule_of,
    template_columns,
)
from tidings.config import Settings, get_settings
from tidings.content.lint import lint_rules
from tidings.content.template import TemplateError, prepare_template
from tidings.dispatch import service as dispatch
from tidings.dispatch.models import Message, MessageState
from tidings.dispatch.service import CampaignNotFound, CampaignStateError
from tidings.loyalty import coupons
from tidings.loyalty.offers import coupon_column
from tidings.notifications import preferences
from tidings.policy.rules import PolicyRules
from tidings.providers.templates import approval_missing
from tidings.segments.audience import local_today
from tidings.segments.rules import parse
from tidings.segments.service import SegmentNotFound, require, saved_rules
from tidings.segments.tree import Rule
from tidings.tracking.targets import TargetError, campaign_links

__all__ = ["CampaignError", "CampaignNotFound", "CampaignStateError"]
VARIANT_NAMES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DURATION = re.compile(r"^(\d+)\s*([dh])$")
PLANNABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


def get(*, db_session: Session, campaign_id: int) -> Campaign:
    """Gets a campaign by id, or says that there is none."""
    return dispatch.get(db_session=db_session, campaign_id=campaign_id)


def variants_of(*, db_session: Session, campaign_id: int) -> list[Variant]:
    """A campaign's variants, A first."""
    query = select(Variant).where(Variant.campaign_id == campaign_id).order_by(Variant.name)
    return list(db_session.scalars(query))


def _expiry(text_value: str | None, *, now: datetime, timezone: str) -> datetime | None:
    if not text_value:
        return None
    match = _DURATION.match(text_value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        moment = datetime.fromisoformat(text_value.strip())
    except ValueError:
        raise CampaignError(
            f"expiry '{text_value}' is not an ISO time or a duration like 2d or 12h"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))).astimezone(UTC)


def _category(category: str | None, settings: Settings) -> str | None:
    if category is None:
        return None
    try:
        return preferences.check_topic(category, settings)
    except preferences.PreferenceError as error:
        raise CampaignError(str(error)) from None


def _check_rollout(stages: list[int]) -> list[int]:
    ok = stages and all(0 < s <= 100 for s in stages) and stages[-1] == 100
    if not ok or any(b <= a for a, b in itertools.pairwise(stages)):
        raise CampaignError(
            f"rollout {','.join(map(str, stages))} must be rising percentages ending at 100,"
            " e.g. 1,10,100"
        )
    return stages


def _audience_rule(db_session: Session, spec: CampaignCreate) -> None:
    if (spec.segment is None) == (spec.rule is None):
        raise CampaignError("give the audience as a saved segment or as a rule, not both")
    if spec.segment is not None:
        try:
            require(db_session=db_session, name=spec.segment)
        except SegmentNotFound as error:
            raise CampaignError(str(error)) from None
    else:
        parse(spec.rule or "")  # a RuleError says where the rule is wrong


def create(*, db_session: Session, spec: CampaignCreate, now: datetime | None = None) -> Campaign:
    """Creates a draft campaign after checking its audience, templates, schedule and rollout."""
    now = now or clock.now()
    settings = get_settings()
    _audience_rule(db_session, spec)
    try:
        schedule = parse_schedule(spec.schedule, timezone=settings.default_timezone, now=now)
    except ScheduleError as error:
        raise CampaignError(str(error)) from None
    expires = _expiry(spec.expires, now=now, timezone=settings.default_timezone)
    try:
        links = campaign_links(
            spec.link,
            utm=spec.link_utm,
            medium=spec.utm_medium,
            campaign=spec.utm_campaign,
            settings=settings,
        )
    except TargetError as error:
        raise CampaignError(str(error)) from None
    columns = template_columns(
        coupon=spec.coupon is not None or spec.coupon_offer is not None,
        link=spec.link is not None,
        expires=expires is not None,
    )
    for index, variant in enumerate(spec.variants):
        try:
            prepare_template(variant.template, kind=CONTENT_KIND[spec.kind], columns=columns)
        except TemplateError as error:
            raise CampaignError(f"variant {VARIANT_NAMES[index]}: {error}") from None
    gates = Gates.from_json(spec.gates) if spec.gates else Gates()
    if spec.promote_winner:
        gates = replace(gates, promote_winner=True)
    campaign = Campaign(
        name=spec.name,
        kind=spec.kind,
        segment_name=spec.segment,
        rule=spec.rule,
        holdout_share=spec.holdout,
        category=_category(spec.category, settings),
        offer_type=spec.offer_type,
        schedule_kind=schedule.kind,
        scheduled_at=schedule.at,
        window_start=schedule.window_start,
        window_end=schedule.window_end,
        expires_at=expires,
        provider=spec.provider or settings.default_provider,
        rollout_stages=_check_rollout(list(spec.rollout)),
        rollout_stage=0,
        gates=gates.as_json(),
        coupon=coupon_column(spec),
        links=links,
        recurrence=checked_recurrence(spec.every) if spec.every else None,
    )
    db_session.add(campaign)
    db_session.flush()
    for index, variant in enumerate(spec.variants):
        db_session.add(
            Variant(
                campaign_id=campaign.id,
                name=VARIANT_NAMES[index],
                template=variant.template,
                weight=variant.weight,
            )
        )
    db_session.flush()
    followups.add_steps(db_session=db_session, campaign=campaign, steps=spec.steps, now=now)
    return campaign


def audience_rule(db_session: Session, campaign: Campaign) -> tuple[Rule, Any]:
    """The campaign's audience rule and the saved segments it may refer to."""
    saved = saved_rules(db_session=db_session)
    if campaign.segment_name is not None:
        if campaign.segment_name not in saved:
            raise CampaignError(
                f"campaign {campaign.id}'s segment '{campaign.segment_name}' no longer exists"
            )
        return saved[campaign.segment_name], saved
    return parse(campaign.rule or ""), saved


def plan(
    *,
    db_session: Session,
    campaign_id: int,
    now: datetime | None = None,
    phases: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Plans (or plans again) a campaign: one message row per member, in bulk.

    `phases`, when given, receives the seconds spent reading the audience, reading history,
    planning and writing (the bench prints them).
    """
    now = now or clock.now()
    timer = PhaseTimer(phases)
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    if campaign.recurrence is not None:
        raise CampaignStateError(
            f"campaign {campaign_id} recurs ({campaign.recurrence}): each occurrence makes and"
            f" sends a run of its own; see them with: tidings campaign runs {campaign_id}"
        )
    if campaign.status not in PLANNABLE:
        raise CampaignStateError(
            f"campaign {campaign_id} is {campaign.status}; only a draft or scheduled campaign"
            " can be planned"
        )
    settings = get_settings()
    engine = db_session.get_bind()
    assert isinstance(engine, Engine), "a campaign is planned on a session bound to an engine"
    rules = PolicyRules.from_settings(settings)
    rule, saved = audience_rule(db_session, campaign)
    zone = settings.default_timezone
    spec = plan_spec(
        campaign, variants_of(db_session=db_session, campaign_id=campaign_id), settings
    )
    with timer("audience"):
        audience = sources.audience_for(
            engine,
            rule=rule,
            saved=saved,
            today=local_today(zone),
            timezone=zone,
            fields=audience_fields(spec),
        )
        suppressed = sources.suppressions(engine)
        hashes = sources.phone_hashes(audience["phone"]) if suppressed.height else pl.lit("")
        audience = audience.with_columns(phone_hash=hashes)
    with timer("history"):
        history = sources.history(engine, campaign_id=campaign_id, rules=rules, now=now)
        declined = (
            preferences.declined_members(engine, topic=campaign.category)
            if campaign.category
            else None
        )
    pieces = plan_pieces(
        audience,
        spec,
        history=history,
        suppressions=suppressed,
        rules=rules,
        lint=lint_rules(kind=CONTENT_KIND[campaign.kind], scheme=spec.scheme),
        now=now,
        declined=declined,
        given=lambda rows, shows: campaign_fields(rows, campaign, zone, shows),
    )
    frame = sources.write_campaign_plan(
        db_session, campaign=campaign, pieces=pieces, timer=timer, now=now
    )
    summary = summarise(frame, audience=audience.height)
    campaign.plan_summary = summary
    campaign.planned_at = now
    if campaign.status is CampaignStatus.DRAFT:
        campaign.status = CampaignStatus.SCHEDULED
    db_session.flush()
    return summary


def send(*, db_session: Session, campaign_id: int, now: datetime | None = None) -> int:
    """Starts a planned campaign: it runs, and its first rollout stage is queued with the
    coupons and links its messages show."""
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    if campaign.planned_at is None:
        raise CampaignStateError(
            f"campaign {campaign_id} has no plan yet; run: tidings campaign plan {campaign_id}"
        )
    if campaign.status is not CampaignStatus.SCHEDULED:
        raise CampaignStateError(
            f"campaign {campaign_id} is {campaign.status}, not scheduled: it was sent already"
            f" or stopped (see: tidings campaign status {campaign_id})"
        )
    refusals = unapproved_texts(db_session=db_session, campaign=campaign)
    if refusals:
        raise CampaignStateError(f"campaign {campaign_id} cannot be sent: {refusals[0][1]}")
    now = now or clock.now()
    issue_shown(db_session, campaign, now=now)
    queued = dispatch.start(db_session=db_session, campaign_id=campaign_id)
    campaign.stage_started_at = now
    db_session.flush()
    return queued


def unapproved_texts(*, db_session: Session, campaign: Campaign) -> list[tuple[int | None, str]]:
    """(variant id, reason) of each variant whose first planned message the campaign's
    provider would refuse: an account of a cloud provider sends only approved templates."""
    first = db_session.execute(
        select(Message.variant_id, Message.text)
        .where(
            Message.id.in_(
                select(func.min(Message.id))
                .where(Message.campaign_id == campaign.id, Message.state == MessageState.PLANNED)
                .group_by(Message.variant_id)
            )
        )
        .order_by(Message.variant_id)
    ).all()
    settings = get_settings()
    found = [
        (variant_id, approval_missing(campaign.provider, body, settings=settings))
        for variant_id, body in first
    ]
    return [(variant_id, reason) for variant_id, reason in found if reason is not None]


def pause(*, db_session: Session, campaign_id: int) -> None:
    """Pauses a campaign: none of its messages is claimed or submitted until it resumes."""
    dispatch.pause(db_session=db_session, campaign_id=campaign_id)


def resume(*, db_session: Session, campaign_id: int, now: datetime | None = None) -> int:
    """Resumes a paused campaign. After a failed health gate, resuming is the operator's
    judgement that the stage is good enough: the next stage is released. Returns how many
    messages that queued."""
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    report = list(campaign.rollout_report or [])
    stages = campaign.rollout_stages or [100]
    gated = (
        bool(report)
        and not report[-1].get("passed", True)
        and report[-1].get("stage") == campaign.rollout_stage
        and campaign.rollout_stage < len(stages) - 1
    )
    dispatch.resume(db_session=db_session, campaign_id=campaign_id)
    if not gated:
        return 0
    campaign.rollout_report = [*report[:-1], {**report[-1], "overridden": True}]
    return release_next_stage(db_session, campaign, now=now or clock.now())


def cancel(*, db_session: Session, campaign_id: int) -> int:
    """Cancels a campaign and every message of it not yet handed to a provider; its
    coupons not redeemed are voided, so a till refuses them."""
    cancelled = dispatch.cancel(db_session=db_session, campaign_id=campaign_id)
    coupons.void_campaign(db_session=db_session, campaign_id=campaign_id)
    return cancelled


def outcome_counts(*, db_session: Session, campaign_id: int) -> dict[str, int]:
    """Counts of a campaign's messages: queued, handed to the provider, and their fates."""
    rows = db_session.execute(
        text(
            "SELECT state, attempts > 0, COUNT(*) FROM messages WHERE campaign_id = :id"
            " GROUP BY state, attempts > 0"
        ),
        {"id": campaign_id},
    ).all()
    counts = dict.fromkeys(("queued", "submitted", "delivered", "failed", "expired", "unknown"), 0)
    for state, tried, n in rows:
        if state in ("queued", "delivered", "failed", "expired", "unknown"):
            counts[state] += int(n)
        # Submitted: every message handed over, whatever became of it since.
        if state in ("submitting", "submitted", "delivered", "unknown") or (
            state in ("failed", "expired") and tried
        ):
            counts["submitted"] += int(n)
    return counts


def status(*, db_session: Session, campaign_id: int) -> dict[str, Any]:
    """A campaign's status, rollout progress, message counts and plan."""
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    zone = get_settings().default_timezone
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": str(campaign.kind),
        "status": str(campaign.status),
        "status_reason": campaign.status_reason,
        "schedule": schedule_of(campaign).describe(zone),
        "rollout_stages": list(campaign.rollout_stages or [100]),
        "rollout_stage": campaign.rollout_stage,
        "rollout_report": list(campaign.rollout_report or []),
        "messages": dispatch.message_counts(db_session=db_session, campaign_id=campaign_id),
        "plan": campaign.plan_summary,
        "planned_at": campaign.planned_at,
    }


def list_campaigns(*, db_session: Session) -> list[dict[str, Any]]:
    """Every campaign, newest first, with its status and message count."""
    counts: dict[int, int] = dict(
        db_session.execute(
            text("SELECT campaign_id, COUNT(*) FROM messages GROUP BY campaign_id")
        ).all()
    )
    rows = db_session.scalars(select(Campaign).order_by(Campaign.id.desc())).all()
    return [
        {
            "id": c.id,
            "name": c.name,
            "kind": str(c.kind),
            "status": str(c.status),
            "messages": int(counts.get(c.id, 0)),
        }
        for c in rows
    ]


SOON = timedelta(minutes=1)  # how far ahead `goes_soon` looks


def goes_soon(*, db_session: Session, campaign_id: int, now: datetime | None = None) -> bool:
    """Whether any of the campaign's messages is in flight, due within a minute, or waiting
    for its rollout stage."""
    horizon = (now or clock.now()) + SOON
    found = db_session.execute(
        select(Message.id)
        .where(
            Message.campaign_id == campaign_id,
            or_(
                Message.state.in_(
                    [MessageState.PLANNED, MessageState.SUBMITTING, MessageState.SUBMITTED]
                ),
                and_(Message.state == MessageState.QUEUED, Message.send_at <= horizon),
            ),
        )
        .limit(1)
    ).first()
    return found is not None


def is_settled(campaign: Campaign) -> bool:
    """Whether a campaign is done moving on its own (completed, cancelled or paused)."""
    return campaign.status in (
        CampaignStatus.COMPLETED,
        CampaignStatus.CANCELLED,
        CampaignStatus.PAUSED,
    )


def kinds() -> list[str]:
    """The campaign kinds, for help texts."""
    return [kind.value for kind in CampaignKind]
