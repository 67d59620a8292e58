"""Tables of the outbox (one Message row per send, the truth about it) and delivery receipts."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class MessageState(enum.StrEnum):
    """Where a message is on its way to a handset. States only move forward."""

    PLANNED = "planned"
    QUEUED = "queued"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    # Handed to a provider that cannot say whether it took it: never resent.
    UNKNOWN = "unknown"


S = MessageState

# The one place that says which moves are allowed. Every UPDATE of a message's state is
# guarded by `state IN sources(target)`, so a late or repeated event never moves it back.
# submitting -> queued is the only step back, and only for a message the provider never
# took (a throttled or refused call, or one the provider's query does not know).
TRANSITIONS: dict[MessageState, frozenset[MessageState]] = {
    S.PLANNED: frozenset({S.QUEUED, S.CANCELLED, S.SKIPPED}),
    S.QUEUED: frozenset({S.SUBMITTING, S.CANCELLED, S.SKIPPED, S.EXPIRED}),
    S.SUBMITTING: frozenset({S.SUBMITTED, S.QUEUED, S.FAILED, S.UNKNOWN}),
    S.SUBMITTED: frozenset({S.DELIVERED, S.FAILED, S.EXPIRED}),
    # A late receipt settles what a crash left uncertain; it never causes a resend.
    S.UNKNOWN: frozenset({S.DELIVERED, S.FAILED, S.EXPIRED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.SKIPPED: frozenset(),
}
FINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
SETTLED_STATES = FINAL_STATES | {S.UNKNOWN}
# The states of a message never handed to a provider, and the condition that leaves them
# out, word for word as the dashboard's query and its partial index both say it (SQLite
# uses a partial index only for a query that states its condition). Not `NOT IN (...)`:
# SQLite builds a table of the list each time a statement runs, that is once per message
# that an executemany writes, which made the index cost more than a full one.
NOT_HANDED_OVER = (S.PLANNED, S.QUEUED, S.SKIPPED, S.CANCELLED)
HANDED_OVER = " AND ".join(f"state <> '{state}'" for state in NOT_HANDED_OVER)
# What ix_messages_state holds: every message but a planned one (a plan writes a million at
# once, and they are only ever looked up by campaign). A query by state alone says it,
# word for word, so that SQLite uses that index.
NOT_PLANNED = f"state <> '{S.PLANNED}'"
# What uq_messages_dedupe_key holds: the messages with a key of their own (a trigger's, a
# reply's, an API message's), not a campaign's million. An upsert on the key says it.
KEYED = "dedupe_key IS NOT NULL"


def sources(target: MessageState) -> list[str]:
    """Returns the states a message may be in to move to `target`, sorted."""
    return sorted(state.value for state, targets in TRANSITIONS.items() if target in targets)


def state_guard(target: MessageState, column: str = "state") -> str:
    """Returns the SQL condition `column IN (...)` that allows a move to `target`."""
    allowed = ", ".join(f"'{state}'" for state in sources(target))
    return f"{column} IN ({allowed})"


class MessageKind(enum.StrEnum):
    """Why a message is sent; it decides the send window and the priority."""

    MARKETING = "marketing"
    TRIGGER = "trigger"
    TRANSACTIONAL = "transactional"
    REPLY = "reply"


# Lower goes first: a reply to a member outranks a receipt, which outranks a promotion.
PRIORITY: dict[MessageKind, int] = {
    MessageKind.REPLY: 0,
    MessageKind.TRANSACTIONAL: 1,
    MessageKind.TRIGGER: 5,
    MessageKind.MARKETING: 9,
}


class Message(Base):
    """One member's message of one campaign or trigger firing: the outbox and the ledger."""

    __tablename__ = "messages"
    __table_args__ = (
        # The claimer reads only queued messages, most urgent first; planned and skipped ones
        # (a plan writes a million at once) stay out of its index. It leads with state so
        # that SQLite, without statistics, prefers it to ix_messages_state for the claim.
        Index(
            "ix_messages_queued_priority_send_at",
            "state",
            "priority",
            "send_at",
            "id",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_messages_state",
            "state",
            sqlite_where=text(NOT_PLANNED),
            postgresql_where=text(NOT_PLANNED),
        ),
        Index("ix_messages_campaign_id_state", "campaign_id", "state"),
        # Receipts look messages up by the provider's id: only those a provider took have one.
        Index(
            "ix_messages_provider_provider_message_id",
            "provider",
            "provider_message_id",
            sqlite_where=text("provider_message_id IS NOT NULL"),
            postgresql_where=text("provider_message_id IS NOT NULL"),
        ),
        # A member gets each step of a campaign once; the same index finds a member's
        # messages. Messages of no campaign are told apart by their dedupe key instead.
        Index(
            "uq_messages_member_id_campaign_id_step",
            "member_id",
            "campaign_id",
            "step",
            unique=True,
        ),
        Index(
            "uq_messages_dedupe_key",
            "dedupe_key",
            unique=True,
            sqlite_where=text(KEYED),
            postgresql_where=text(KEYED),
        ),
        # Attribution after each order import reads the deliveries of the last weeks; only
        # delivered messages have an entry (a plan's planned ones cost none).
        Index(
            "ix_messages_delivered_at",
            "delivered_at",
            sqlite_where=text("delivered_at IS NOT NULL"),
            postgresql_where=text("delivered_at IS NOT NULL"),
        ),
        # The console's dashboard reads a fortnight of sends by day from this index alone.
        # It holds only messages handed to a provider: a plan's million planned and skipped
        # ones would each cost an index entry, and the dashboard counts none of them.
        Index(
            "ix_messages_send_at_state",
            "send_at",
            "state",
            "cost_cents",
            sqlite_where=text(HANDED_OVER),
            postgresql_where=text(HANDED_OVER),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Empty for a campaign's messages (member, campaign and step tell them apart): a
    # trigger's, a reply's or an API message's own key, which makes it once only.
    dedupe_key: Mapped[str | None] = mapped_column(String(100))
    # Written a million at a time by the planner with the campaign, members and variants it
    # has just read: no foreign keys, which would check (and lock) a row per message (0015).
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    variant_id: Mapped[int | None] = mapped_column(Integer)
    trigger_id: Mapped[int | None] = mapped_column(Integer)
    member_id: Mapped[int | None] = mapped_column(Integer)
    phone: Mapped[str] = mapped_column(String(20))
    timezone: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind), default=MessageKind.MARKETING)
    offer_type: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=PRIORITY[MessageKind.MARKETING])
    text: Mapped[str] = mapped_column(Text)
    parts: Mapped[int] = mapped_column(Integer, default=1)
    cost_cents: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[MessageState] = mapped_column(_enum(MessageState), default=MessageState.PLANNED)
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    rollout_stage: Mapped[int] = mapped_column(Integer, default=0)
    # 0: the campaign's first send; 1, 2, ...: its follow-up or countdown steps.
    step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    send_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    provider: Mapped[str] = mapped_column(String(32), default="simulator")
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error_code: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    final_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now, onupdate=clock.now)


class ReceiptStatus(enum.StrEnum):
    """What a provider reports about a message it took."""

    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


class DeliveryReceipt(Base):
    """A provider's report, kept as received; `message_id` is empty when no message matched."""

    __tablename__ = "delivery_receipts"
    __table_args__ = (
        # Receipts are looked up by the provider's id only while they name no message (0017).
        Index(
            "ix_delivery_receipts_provider_provider_message_id",
            "provider",
            "provider_message_id",
            sqlite_where=text("message_id IS NULL"),
            postgresql_where=text("message_id IS NULL"),
        ),
        Index("ix_delivery_receipts_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[ReceiptStatus] = mapped_column(_enum(ReceiptStatus))
    error_code: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    # The message the receipt was matched to, in the transaction that stored it; no foreign
    # key, which would look the message up again per receipt (0017).
    message_id: Mapped[int | None] = mapped_column(Integer)
