"""Recurring campaigns: at each occurrence of its schedule a recurring campaign makes a run,
a campaign copied from it (audience rule, variants, follow-up steps, offer, link, rollout)
that builds a fresh audience, is planned and sent at once, and is reported on its own, its
steps each going their delay after the run's own send. A run is made once per
occurrence: the unique (recurring_id, occurrence_at) holds across restarts and workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns import service
from tidings.campaigns.followups import lock_for_writing, steps_of
from tidings.campaigns.models import Campaign, CampaignStatus, CampaignStep, ScheduleKind, Variant
from tidings.campaigns.recurrence import parse_recurrence
from tidings.config import get_settings
from tidings.dispatch.models import Message

# An occurrence missed by more than this (the service was down) is skipped, never sent late.
GRACE = timedelta(hours=6)
NOT_COPIED = {
    "id",
    "name",
    "status",
    "status_reason",
    "schedule_kind",
    "scheduled_at",
    "window_start",
    "window_end",
    "rollout_stage",
    "stage_started_at",
    "rollout_report",
    "plan_summary",
    "planned_at",
    "recurrence",
    "recurring_id",
    "occurrence_at",
    "created_at",
    "updated_at",
}


def _make_run(db_session: Session, recurring: Campaign, occurrence: datetime) -> Campaign | None:
    """Copies the recurring campaign for one occurrence; None when that run exists already."""
    zone = ZoneInfo(get_settings().default_timezone)
    copied = {
        column.key: getattr(recurring, column.key)
        for column in Campaign.__table__.columns
        if column.key not in NOT_COPIED
    }
    run = Campaign(
        **copied,
        name=f"{recurring.name} {occurrence.astimezone(zone):%Y-%m-%d}",
        schedule_kind=ScheduleKind.NOW,
        recurring_id=recurring.id,
        occurrence_at=occurrence,
    )
    try:
        with db_session.begin_nested():
            db_session.add(run)
            db_session.flush()
    except IntegrityError:
        return None  # another worker (or an earlier pass) made it
    for variant in service.variants_of(db_session=db_session, campaign_id=recurring.id):
        db_session.add(
            Variant(
                campaign_id=run.id,
                name=variant.name,
                template=variant.template,
                weight=variant.weight,
                is_control=variant.is_control,
            )
        )
    for step in steps_of(db_session=db_session, campaign_id=recurring.id):
        if step.after_minutes is None:
            # A step at a set moment (refused on recurring campaigns since runs copy steps)
            # would never come due in a later run; it and the steps after it stay behind.
            break
        db_session.add(
            CampaignStep(
                campaign_id=run.id,
                number=step.number,
                after_minutes=step.after_minutes,
                reaction=step.reaction,
                rule=step.rule,
                template=step.template,
            )
        )
    db_session.flush()
    return run


def make_due_runs(*, db_session: Session, now: datetime | None = None) -> list[int]:
    """Makes, plans and sends the run of each recurring campaign whose occurrence has come
    (the latest one within GRACE); returns the new runs' ids."""
    now = now or clock.now()
    zone = get_settings().default_timezone
    lock_for_writing(db_session)
    recurring = db_session.scalars(
        select(Campaign).where(
            Campaign.recurrence.is_not(None), Campaign.status != CampaignStatus.CANCELLED
        )
    ).all()
    made = []
    for definition in recurring:  # a few definitions, not members
        since = max(definition.created_at, now - GRACE)
        due = parse_recurrence(definition.recurrence or "").occurrences(since, now, zone)
        if not due:
            continue
        run = _make_run(db_session, definition, due[-1])
        if run is None:
            continue
        service.plan(db_session=db_session, campaign_id=run.id, now=now)
        service.send(db_session=db_session, campaign_id=run.id, now=now)
        made.append(run.id)
    return made


def runs(*, db_session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """A recurring campaign's runs, newest first, with their status and message counts."""
    service.get(db_session=db_session, campaign_id=campaign_id)  # says when there is none
    counts = dict(
        db_session.execute(
            select(Campaign.id, func.count())
            .select_from(Campaign)
            .join(Message, Message.campaign_id == Campaign.id)
            .where(Campaign.recurring_id == campaign_id)
            .group_by(Campaign.id)
        ).all()
    )
    rows = db_session.scalars(
        select(Campaign)
        .where(Campaign.recurring_id == campaign_id)
        .order_by(Campaign.occurrence_at.desc())
    ).all()
    return [
        {
            "id": run.id,
            "name": run.name,
            "occurrence_at": run.occurrence_at,
            "status": str(run.status),
            "messages": int(counts.get(run.id, 0)),
            "plan": run.plan_summary,
            "steps": [
                {"number": step.number, "planned_at": step.planned_at, "plan": step.plan_summary}
                for step in steps_of(db_session=db_session, campaign_id=run.id)
            ],
        }
        for run in rows
    ]
