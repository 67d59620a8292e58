"""Tables of the conversation with members: replies as received, the tickets agents answer
(with their history and routing rules), store stock, bookings and survey responses."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Reply(Base):
    """One reply (an MO message). A provider's id is unique per account, so a callback
    delivered twice stores it once."""

    __tablename__ = "replies"
    __table_args__ = (
        UniqueConstraint("provider", "provider_message_id"),
        Index("ix_replies_member_id_received_at", "member_id", "received_at"),
        Index("ix_replies_phone_received_at", "phone", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))  # the account it arrived on
    provider_message_id: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str | None] = mapped_column(String(32))  # our number or extension
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The most recent message the member received before writing, so "1" has a context.
    in_reply_to_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    # What the reply was taken for (opt_out, points, ticket, ...) and how sure that was;
    # empty until handled.
    intent: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float)
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TicketStatus(enum.StrEnum):
    """Where a ticket is: waiting for an agent, for the member, or done."""

    OPEN = "open"
    PENDING = "pending"
    SOLVED = "solved"


class TicketPriority(enum.StrEnum):
    """How soon a ticket needs a person: complaints are urgent."""

    URGENT = "urgent"
    NORMAL = "normal"


UNSOLVED = text("status <> 'solved'")


class Ticket(Base):
    """A conversation a person must handle, in a store's or a team's queue."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_queue", "status", "queue"),
        Index("ix_tickets_member_id", "member_id"),
        Index("ix_tickets_first_response_due", "first_response_due"),
        # One unsolved ticket per phone: a member's further messages join it, even when
        # two callbacks for the same phone are handled at the same time.
        Index(
            "uq_tickets_unsolved_phone",
            "phone",
            unique=True,
            sqlite_where=UNSOLVED,
            postgresql_where=UNSOLVED,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[TicketPriority] = mapped_column(
        _enum(TicketPriority), default=TicketPriority.NORMAL
    )
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.OPEN)
    queue: Mapped[str] = mapped_column(String(100))  # store:<code> or team:<name>
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="SET NULL"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    phone: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(32))  # the account answers go out on
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(Text)  # the member's words that opened it
    assignee: Mapped[str | None] = mapped_column(String(100))
    # Answers an agent may send as they are: [{"intent": ..., "text": ..., "confidence": ...}].
    suggestions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    first_response_due: Mapped[datetime] = mapped_column(UtcDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    breached: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now, onupdate=clock.now)


class TicketEvent(Base):
    """One entry of a ticket's history: opened, a member's message, an answer, a move."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # opened, reply, answer, status, assign, breach
    actor: Mapped[str] = mapped_column(String(100))  # member, system or the agent's name
    text: Mapped[str | None] = mapped_column(Text)
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class RoutingRule(Base):
    """Where tickets of a category go: `store` (the member's store) or `team:<name>`."""

    __tablename__ = "ticket_routing_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(32), unique=True)
    queue: Mapped[str] = mapped_column(String(100))


class StockLevel(Base):
    """How many of a product a store has, as last imported."""

    __tablename__ = "stock_levels"
    __table_args__ = (UniqueConstraint("store_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class Booking(Base):
    """A visit a member asked for by text (预约 + a date or time)."""

    __tablename__ = "bookings"
    __table_args__ = (Index("ix_bookings_store_id_booked_for", "store_id", "booked_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="SET NULL"))
    reply_id: Mapped[int | None] = mapped_column(
        ForeignKey("replies.id", ondelete="SET NULL"), unique=True
    )
    booked_for: Mapped[datetime] = mapped_column(UtcDateTime)
    day: Mapped[date] = mapped_column(Date)  # the local day, for a store's list
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="booked")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class SurveyResponse(Base):
    """A member's answer to a survey message: a score 1-5 or a short word."""

    __tablename__ = "survey_responses"
    __table_args__ = (Index("ix_survey_responses_campaign_id", "campaign_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id", ondelete="CASCADE"), unique=True)
    score: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
