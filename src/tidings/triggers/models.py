"""Tables of triggers (standing rules, built-in or the operator's) and of their firings (one
row per member per occasion, so an occasion never fires twice)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


class Trigger(Base):
    """A standing rule: when something happens (or a date comes), send a member a message.

    `kind` is a built-in key (birthday, cart_abandoned, ...) or `custom`; `config` holds the
    kind's parameters (see `tidings.triggers.catalogue`). A custom trigger reacts to an event
    type or a date field, after `delay_minutes`, to members its `condition` (a segment rule)
    matches, unless its `exit_condition` matches them by the time it fires.
    """

    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    template: Mapped[str] = mapped_column(Text)
    condition: Mapped[str | None] = mapped_column(Text)
    exit_condition: Mapped[str | None] = mapped_column(Text)
    event_type: Mapped[str | None] = mapped_column(String(50))
    date_field: Mapped[str | None] = mapped_column(String(50))
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    expiry_minutes: Mapped[int | None] = mapped_column(Integer)
    offer_type: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now, onupdate=clock.now)


class TriggerFiring(Base):
    """One occasion a trigger fired for a member (`key`: birthday:2026, cart:17:1h, ...).

    The unique (trigger, member, key) makes a firing idempotent across restarts and events
    delivered twice; `outcome` is the message's state when it was written (queued, skipped,
    cancelled) and `skip_reason` why it was not sent.
    """

    __tablename__ = "trigger_firings"
    __table_args__ = (
        UniqueConstraint("trigger_id", "member_id", "key"),
        Index("ix_trigger_firings_member_id_fired_at", "member_id", "fired_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    fired_at: Mapped[datetime] = mapped_column(UtcDateTime)
    dedupe_key: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(64))
