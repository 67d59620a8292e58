"""Tables of transactional sends: the request behind each API message, the status callbacks
still to post, and verification codes (kept only as a keyed hash)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class NotificationKind(enum.StrEnum):
    """What an integrator sends: a notice (order, delivery, appointment) or a code."""

    NOTIFICATION = "notification"
    VERIFICATION = "verification"


class Notification(Base):
    """One accepted `POST /api/v1/messages`: its idempotency key, its message and callback."""

    __tablename__ = "notifications"
    __table_args__ = (
        # The callback scan reads only requests whose message moved since the last post.
        Index("ix_notifications_callback_url_notified_state", "callback_url", "notified_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    kind: Mapped[NotificationKind] = mapped_column(_enum(NotificationKind))
    urgent: Mapped[bool] = mapped_column(default=False)
    callback_url: Mapped[str | None] = mapped_column(String(500))
    # The message state last queued for posting to the callback URL.
    notified_state: Mapped[str | None] = mapped_column(String(16))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class CallbackState(enum.StrEnum):
    """Where a status callback is: waiting (or retrying), posted, or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class CallbackDelivery(Base):
    """One status change to post to an integrator's callback URL, kept until it is taken."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "status"),
        Index("ix_callback_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[CallbackState] = mapped_column(
        _enum(CallbackState), default=CallbackState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class Verification(Base):
    """A verification code sent to a phone: its keyed hash, expiry and the tries left."""

    __tablename__ = "verifications"
    __table_args__ = (Index("ix_verifications_phone_created_at", "phone", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The message's text with the code masked: it replaces the text in the ledger once the
    # message is handed over, so the code stays in clear only while it waits to go.
    masked_text: Mapped[str] = mapped_column(Text)
    scrubbed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
