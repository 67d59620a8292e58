"""Tables of campaigns and their variants: what is sent to whom, when, and how it rolls out."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class CampaignKind(enum.StrEnum):
    """Marketing needs consent and the send window; notifications inform (a store moved)."""

    MARKETING = "marketing"
    NOTIFICATION = "notification"


class CampaignStatus(enum.StrEnum):
    """Where a campaign is in its life."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


# The one place that says which lifecycle moves are allowed; services check it.
CAMPAIGN_TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset(
        {CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.RUNNING: frozenset(
        {CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.RUNNING, CampaignStatus.CANCELLED}),
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}


class ScheduleKind(enum.StrEnum):
    """When a campaign's messages may go."""

    NOW = "now"
    AT = "at"
    BEST_HOUR = "best_hour"
    SPREAD = "spread"


class Campaign(Base):
    """One send to an audience: variants, holdout, schedule, provider and staged rollout."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_status", "status"),
        # One run per occurrence of a recurring campaign, whatever restarts or races.
        UniqueConstraint(
            "recurring_id", "occurrence_at", name="uq_campaigns_recurring_id_occurrence_at"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[CampaignKind] = mapped_column(_enum(CampaignKind), default=CampaignKind.MARKETING)
    status: Mapped[CampaignStatus] = mapped_column(
        _enum(CampaignStatus), default=CampaignStatus.DRAFT
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    segment_name: Mapped[str | None] = mapped_column(String(100))
    rule: Mapped[str | None] = mapped_column(Text)
    holdout_share: Mapped[float] = mapped_column(Float, default=0.0)
    offer_type: Mapped[str | None] = mapped_column(String(64))
    schedule_kind: Mapped[ScheduleKind] = mapped_column(
        _enum(ScheduleKind), default=ScheduleKind.NOW
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    provider: Mapped[str] = mapped_column(String(32), default="simulator")
    # Percentages of the audience reached after each stage, e.g. [1, 10, 100].
    rollout_stages: Mapped[list[int]] = mapped_column(JSON, default=lambda: [100])
    rollout_stage: Mapped[int] = mapped_column(Integer, default=0)
    # When the current rollout stage was released, and what each gate check found.
    stage_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rollout_report: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The counts of the latest plan (audience, holdout, planned, skips by reason, cost).
    plan_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Health gates checked after each stage, e.g. {"delivery_min": 0.98, ...}.
    gates: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Seams for the loyalty and tracking issues: how coupons and short links are attached.
    coupon: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    links: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The kind of message (promotions, new_arrivals, tips, surveys): members who declined it
    # are skipped with reason preference:<kind>. None: every member with consent.
    category: Mapped[str | None] = mapped_column(String(32))
    # A recurring campaign's schedule ("every wed 10:00"): it is never sent itself; each
    # occurrence makes a run, a campaign copied from it with recurring_id and occurrence_at.
    recurrence: Mapped[str | None] = mapped_column(String(100))
    recurring_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE", name="fk_campaigns_recurring_id")
    )
    occurrence_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now, onupdate=clock.now)


class Variant(Base):
    """One arm of an A/B/n test: a template and its share of the audience."""

    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(Text)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class CampaignStep(Base):
    """A later send of a campaign: after a delay to those of the step before who reacted (or
    did not), or at a set time (a countdown to a date) to an audience rule of its own."""

    __tablename__ = "campaign_steps"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ...: the campaign's own send is 0
    after_minutes: Mapped[int | None] = mapped_column(Integer)  # after the step before went
    at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # or at this moment
    # Who of the step before: clicked, not-clicked, converted, ... (None: all of them).
    reaction: Mapped[str | None] = mapped_column(String(32))
    rule: Mapped[str | None] = mapped_column(Text)  # an audience of its own (countdowns)
    template: Mapped[str] = mapped_column(Text)
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    plan_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
