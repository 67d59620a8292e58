"""A campaign's later steps: storing them, planning each when it comes due, and listing them.

A follow-up goes a delay after the step before to those of its recipients who clicked,
converted or replied (or did not); a countdown step goes at a set moment to an audience rule
of its own, leaving out whoever reacted to an earlier step when it says `not-...`. Either
way the step runs through the same planner and policy as the campaign (consent, suppression,
caps counting the campaign's own earlier messages, send windows), and its messages are the
campaign's, with the step's number. A campaign with steps still to plan stays running.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns import sources
from tidings.campaigns.models import Campaign, CampaignStatus, CampaignStep, ScheduleKind
from tidings.campaigns.planner import (
    CONTENT_KIND,
    MESSAGE_KIND,
    PlanSpec,
    PlanVariant,
    audience_fields,
    dispatch_priority,
    plan_pieces,
    summarise,
)
from tidings.campaigns.schedule import Schedule
from tidings.campaigns.schemas import StepCreate
from tidings.campaigns.spec import CampaignError, campaign_fields, plan_spec, template_columns
from tidings.campaigns.steps import Reaction, StepError, delay_minutes, reaction_of
from tidings.config import Settings, get_settings
from tidings.content.lint import lint_rules
from tidings.content.template import TemplateError, parse_template, prepare_template
from tidings.db import is_sqlite, read_frame
from tidings.dispatch.models import Message, MessageState
from tidings.loyalty import offers
from tidings.notifications import preferences
from tidings.policy.rules import PolicyRules
from tidings.segments.audience import local_today
from tidings.segments.rules import RuleError, parse
from tidings.segments.service import saved_rules
from tidings.tracking import links

IDS = {"member_id": pl.Int64}
EVERYONE = "member_id > 0"
# What each action means, read in bulk over the messages of the steps looked at (`{steps}`):
# a person's click on the member's link after the message went, an order attributed to it,
# a reply to it.
ACTION_SQL = {
    "clicked": (
        "SELECT DISTINCT m.member_id FROM messages m"
        " JOIN short_links l ON l.campaign_id = m.campaign_id AND l.member_id = m.member_id"
        " JOIN clicks c ON c.link_id = l.id"
        " WHERE m.campaign_id = {campaign} AND m.step IN ({steps})"
        " AND m.submitted_at IS NOT NULL AND NOT c.is_robot AND c.clicked_at >= m.submitted_at"
    ),
    "converted": (
        "SELECT DISTINCT m.member_id FROM attributions a JOIN messages m ON m.id = a.message_id"
        " WHERE m.campaign_id = {campaign} AND m.step IN ({steps})"
    ),
    "replied": (
        "SELECT DISTINCT m.member_id FROM replies r"
        " JOIN messages m ON m.id = r.in_reply_to_message_id"
        " WHERE m.campaign_id = {campaign} AND m.step IN ({steps})"
    ),
}
RECIPIENTS_SQL = (
    "SELECT DISTINCT member_id FROM messages WHERE campaign_id = {campaign} AND step IN ({steps})"
    " AND member_id IS NOT NULL AND submitted_at IS NOT NULL"
)


def step_columns(campaign: Campaign) -> list[str]:
    """The fields a step's template may use: the audience's and what its campaign gives
    (its coupon, link and expiry date)."""
    return template_columns(
        coupon=bool(campaign.coupon),
        link=bool(campaign.links),
        expires=campaign.expires_at is not None,
    )


def _step_template(draft: StepCreate, number: int, campaign: Campaign) -> None:
    columns = step_columns(campaign)
    try:
        prepare_template(draft.template, kind=CONTENT_KIND[campaign.kind], columns=columns)
    except TemplateError as error:
        raise CampaignError(f"step {number}: {error}") from None


def add_steps(
    *, db_session: Session, campaign: Campaign, steps: list[StepCreate], now: datetime
) -> list[CampaignStep]:
    """Checks and stores a new campaign's steps, numbered from 1 in the order given."""
    rows = []
    for number, draft in enumerate(steps, start=1):
        _step_template(draft, number, campaign)
        try:
            after = delay_minutes(draft.after) if draft.after is not None else None
            reaction = reaction_of(draft.reaction) if draft.reaction else None
            if draft.rule:
                parse(draft.rule)
        except (StepError, RuleError) as error:
            raise CampaignError(f"step {number}: {error}") from None
        at = draft.at
        if at is not None and campaign.recurrence is not None:
            raise CampaignError(
                f"step {number} goes at a set moment, which would be the same for every run of"
                " a recurring campaign; give it a delay after the step before (e.g. 2d) instead"
            )
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(get_settings().default_timezone))
        if at is not None and at <= now:
            raise CampaignError(f"step {number} goes at {at.isoformat()}, which has passed")
        rows.append(
            CampaignStep(
                campaign_id=campaign.id,
                number=number,
                after_minutes=after,
                at=at,
                reaction=reaction.value if reaction else None,
                rule=draft.rule,
                template=draft.template,
            )
        )
    db_session.add_all(rows)
    db_session.flush()
    return rows


def steps_of(*, db_session: Session, campaign_id: int) -> list[CampaignStep]:
    """A campaign's steps, in order."""
    query = select(CampaignStep).where(CampaignStep.campaign_id == campaign_id)
    return list(db_session.scalars(query.order_by(CampaignStep.number)))


def due_at(campaign: Campaign, step: CampaignStep, before: CampaignStep | None) -> datetime | None:
    """When a step goes: its moment, or its delay after the step before went (None: the step
    before has not gone yet)."""
    if step.at is not None:
        return step.at
    went = campaign.stage_started_at if before is None else before.planned_at
    if went is None or step.after_minutes is None:
        return None
    return went + timedelta(minutes=step.after_minutes)


def lock_for_writing(db_session: Session) -> None:
    """On SQLite, takes the write lock before reading: a transaction that has read cannot
    wait for the lock, so a sender's write in between would make the pass fail."""
    if is_sqlite(db_session):
        db_session.execute(text("UPDATE campaign_steps SET id = id WHERE 1 = 0"))


def plan_due(*, db_session: Session, now: datetime | None = None) -> list[tuple[int, int]]:
    """Plans and queues every running campaign's steps that have come due; returns their
    (campaign id, step number)."""
    now = now or clock.now()
    lock_for_writing(db_session)
    pending = db_session.scalars(
        select(CampaignStep)
        .join(Campaign, Campaign.id == CampaignStep.campaign_id)
        .where(Campaign.status == CampaignStatus.RUNNING, CampaignStep.planned_at.is_(None))
        .order_by(CampaignStep.campaign_id, CampaignStep.number)
        # Several workers on PostgreSQL: a step one of them is planning is left to it.
        .with_for_update(skip_locked=True, of=CampaignStep)
    ).all()
    done: list[tuple[int, int]] = []
    for step in pending:  # a few steps per campaign, not members
        campaign = db_session.get(Campaign, step.campaign_id)
        assert campaign is not None
        before = None
        if step.number > 1:
            before = db_session.scalars(
                select(CampaignStep).where(
                    CampaignStep.campaign_id == step.campaign_id,
                    CampaignStep.number == step.number - 1,
                )
            ).one()
        moment = due_at(campaign, step, before)
        if moment is None or moment > now:
            continue
        plan_step(db_session=db_session, campaign=campaign, step=step, now=now)
        done.append((campaign.id, step.number))
    return done


def _ids(engine: Engine, sql: str, campaign_id: int, steps: list[int]) -> pl.DataFrame:
    listed = ", ".join(str(int(n)) for n in steps)
    return read_frame(
        engine, sql.format(campaign=int(campaign_id), steps=listed), schema=IDS
    ).select(pl.col("member_id").cast(pl.Int64))


def chosen_members(
    engine: Engine, *, campaign_id: int, step: CampaignStep, audience: pl.DataFrame
) -> pl.DataFrame:
    """The step's audience narrowed by its reaction: a follow-up keeps only the recipients of
    the step before; `not-...` leaves out who did it after any earlier step (who bought on
    the first message is not nagged by the third), the others keep only who did it after
    the step before (a countdown step: after any earlier step)."""
    before = [step.number - 1]
    earlier = list(range(step.number))
    if step.rule is None:
        recipients = _ids(engine, RECIPIENTS_SQL, campaign_id, before)
        audience = audience.join(recipients, on="member_id", how="semi", maintain_order="left")
    reaction = Reaction(step.reaction) if step.reaction else Reaction.ALL
    if reaction is Reaction.ALL:
        return audience
    looked_at = before if reaction.wanted and step.rule is None else earlier
    acted = _ids(engine, ACTION_SQL[reaction.action], campaign_id, looked_at)
    if reaction.wanted:
        return audience.join(acted, on="member_id", how="semi", maintain_order="left")
    return audience.join(acted, on="member_id", how="anti", maintain_order="left")


def _history(engine: Engine, campaign: Campaign, rules: PolicyRules, now: datetime) -> Any:
    """Every recent message, the campaign's own earlier steps included: they count towards
    caps, but are not repeats of the step (its members are one per step)."""
    history = sources.history(engine, campaign_id=0, rules=rules, now=now)
    own = pl.col("campaign_id") == campaign.id
    return history.with_columns(
        campaign_id=pl.when(own).then(pl.lit(None, dtype=pl.Int64)).otherwise("campaign_id"),
        offer_type=pl.when(own).then(pl.lit(None, dtype=pl.String)).otherwise("offer_type"),
    )


def step_spec(campaign: Campaign, step: CampaignStep, settings: Settings) -> PlanSpec:
    """The campaign's plan spec for one step: the step's template, everyone reached (no
    holdout, one rollout stage), at once (windows defer it), no expiry nor offer cool-down."""
    columns = step_columns(campaign)
    template = prepare_template(step.template, kind=CONTENT_KIND[campaign.kind], columns=columns)
    return replace(
        plan_spec(campaign, [], settings),
        variants=(PlanVariant(0, f"S{step.number}", template, 1),),
        holdout_share=0.0,
        schedule=Schedule(ScheduleKind.NOW),
        expires_at=None,
        rollout_stages=(100,),
        offer_type=None,
    )


def _write_step(
    db_session: Session,
    campaign: Campaign,
    step: CampaignStep,
    frame: pl.DataFrame,
    audience: pl.DataFrame,
    now: datetime,
) -> None:
    """Writes the step's messages, the short links and coupons they show, and queues the
    planned ones at once."""
    sources.write_plan(
        db_session,
        campaign_id=campaign.id,
        plan=frame.with_columns(variant_id=pl.lit(None, dtype=pl.Int64)),
        kind=MESSAGE_KIND[campaign.kind].value,
        priority=dispatch_priority(campaign.kind),
        offer_type=campaign.offer_type,
        provider=campaign.provider,
        now=now,
        step=step.number,
    )
    _write_offers(db_session, campaign, step, frame, audience, now)
    db_session.execute(
        update(Message)
        .where(
            Message.campaign_id == campaign.id,
            Message.step == step.number,
            Message.state == MessageState.PLANNED,
        )
        .values(state=MessageState.QUEUED, updated_at=now)
    )


def _write_offers(
    db_session: Session,
    campaign: Campaign,
    step: CampaignStep,
    frame: pl.DataFrame,
    audience: pl.DataFrame,
    now: datetime,
) -> None:
    """Gives the step's planned members the short links and coupons its text shows, as the
    campaign's (a member who holds them from an earlier send keeps the same)."""
    shows = {
        piece.field
        for piece in parse_template(step.template, columns=audience.columns).placeholders
    }
    if "link" in shows and "link" in audience.columns:
        links.write_step_links(
            db_session,
            campaign=campaign,
            plan=frame,
            urls=audience.select("member_id", "link"),
            step=step.number,
            now=now,
        )
    terms = offers.terms_of(campaign.coupon)
    if "coupon" in shows and terms is not None:
        offers.issue_shown(
            db_session=db_session,
            campaign_id=campaign.id,
            terms=terms,
            plan=frame,
            codes=audience.select("member_id", "coupon"),
            now=now,
        )


def plan_step(
    *, db_session: Session, campaign: Campaign, step: CampaignStep, now: datetime
) -> dict[str, Any]:
    """Plans one step of a running campaign and queues its messages at once."""
    settings = get_settings()
    engine = db_session.get_bind()
    assert isinstance(engine, Engine), "a step is planned on a session bound to an engine"
    zone = settings.default_timezone
    spec = step_spec(campaign, step, settings)
    # Without a rule of its own, a step's audience is the step before's recipients (narrowed
    # below), whatever the campaign's rule says of them now.
    audience = sources.audience_for(
        engine,
        rule=parse(step.rule or EVERYONE),
        saved=saved_rules(db_session=db_session),
        today=local_today(zone),
        timezone=zone,
        fields=audience_fields(spec),
    )
    audience = chosen_members(engine, campaign_id=campaign.id, step=step, audience=audience)
    audience = campaign_fields(audience, campaign, zone)
    rules = PolicyRules.from_settings(settings)
    pieces = plan_pieces(
        audience.with_columns(phone_hash=sources.phone_hashes(audience["phone"])),
        spec,
        history=_history(engine, campaign, rules, now),
        suppressions=sources.suppressions(engine),
        rules=rules,
        lint=lint_rules(kind=CONTENT_KIND[campaign.kind], scheme=spec.scheme),
        now=now,
        declined=(
            preferences.declined_members(engine, topic=campaign.category)
            if campaign.category
            else None
        ),
    )
    frame = pl.concat(list(pieces))
    _write_step(db_session, campaign, step, frame, audience, now)
    step.plan_summary = summarise(frame, audience=audience.height)
    step.planned_at = now
    db_session.flush()
    return step.plan_summary


def describe(step: CampaignStep, timezone: str) -> dict[str, Any]:
    """A step as `tidings campaign steps` shows it."""
    if step.at is not None:
        when = f"at {step.at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} ({timezone})"
    else:
        minutes = step.after_minutes or 0
        amount = f"{minutes // 1440}d" if minutes % 1440 == 0 else f"{minutes // 60}h"
        amount = amount if minutes % 60 == 0 else f"{minutes}m"
        when = f"{amount} after step {step.number - 1}"
    whom = step.rule or f"recipients of step {step.number - 1}"
    if step.reaction and step.reaction != Reaction.ALL.value:
        whom += f", {step.reaction}"
    return {
        "number": step.number,
        "when": when,
        "audience": whom,
        "template": step.template,
        "planned_at": step.planned_at,
        "plan": step.plan_summary,
    }


def list_steps(*, db_session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """A campaign's steps as `tidings campaign steps` lists them."""
    zone = get_settings().default_timezone
    return [describe(s, zone) for s in steps_of(db_session=db_session, campaign_id=campaign_id)]
