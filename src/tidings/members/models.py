"""Tables of members, stores, the consent ledger and suppressions."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
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


class PhoneStatus(enum.StrEnum):
    """Whether a member's phone can receive SMS."""

    OK = "ok"
    MISSING = "missing"
    INVALID = "invalid"
    LANDLINE = "landline"


class ConsentKind(enum.StrEnum):
    """What a consent event records."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class SuppressionReason(enum.StrEnum):
    """Why a phone must not receive marketing (or anything)."""

    OPTED_OUT = "opted_out"
    COMPLAINED = "complained"
    INVALID = "invalid"
    ERASED = "erased"


class Store(Base):
    """A shop of the retailer: where members register and buy."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    type: Mapped[str | None] = mapped_column(String(50))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class Member(Base):
    """A member of the retailer's programme. The phone is E.164 or absent."""

    __tablename__ = "members"
    __table_args__ = (Index("ix_members_store_id", "store_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    phone_status: Mapped[PhoneStatus] = mapped_column(
        Enum(
            PhoneStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=PhoneStatus.OK,
    )
    name: Mapped[str | None] = mapped_column(String(100))
    gender: Mapped[str | None] = mapped_column(String(1))
    birthday: Mapped[date | None] = mapped_column(Date)
    birthday_is_lunar: Mapped[bool] = mapped_column(Boolean, default=False)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    tier: Mapped[str | None] = mapped_column(String(32))
    points: Mapped[int] = mapped_column(Integer, default=0)
    timezone: Mapped[str | None] = mapped_column(String(64))
    registered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now, onupdate=clock.now)
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ConsentEvent(Base):
    """One entry of the append-only consent ledger: who agreed or refused, where, when."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_member_id_occurred_at", "member_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[ConsentKind] = mapped_column(
        Enum(
            ConsentKind,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    topic: Mapped[str] = mapped_column(String(32), default="marketing")
    source: Mapped[str] = mapped_column(String(200))
    text_shown: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class Suppression(Base):
    """A phone that must not be messaged, keyed by its hash so it outlives erasure."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("phone_hash", "reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[SuppressionReason] = mapped_column(
        Enum(
            SuppressionReason,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
