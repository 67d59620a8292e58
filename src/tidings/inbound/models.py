"""The table of replies: every text a member sent back, as a provider handed it over."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


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
