"""Tables of short links (one per message), the clicks on them, and the attribution of
orders to the messages that earned them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class ShortLink(Base):
    """A per-member short link `/s/{code}` of a campaign that redirects to the campaign's
    target (with its UTM parameters). Its message is the campaign's first to the member
    (step 0), found by member and campaign: the link is written before the message has an id."""

    __tablename__ = "short_links"
    __table_args__ = (Index("ix_short_links_campaign_id_member_id", "campaign_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    # No foreign keys: a plan writes these in bulk for its members, just read (0015).
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    trigger_id: Mapped[int | None] = mapped_column(Integer)
    member_id: Mapped[int | None] = mapped_column(Integer)
    target_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


def link_message_sql(link: str, message: str) -> str:
    """The SQL condition that joins the short links aliased `link` to their messages
    aliased `message` (the unique index of member, campaign and step finds each)."""
    return (
        f"{message}.member_id = {link}.member_id AND {message}.campaign_id = {link}.campaign_id"
        f" AND {message}.step = 0"
    )


class Click(Base):
    """One request for a short link. Link-preview robots and prefetches are kept but marked,
    so that reports count people only."""

    __tablename__ = "clicks"
    __table_args__ = (
        Index("ix_clicks_link_id_clicked_at", "link_id", "clicked_at"),
        Index("ix_clicks_clicked_at", "clicked_at"),  # attribution reads the last weeks' clicks
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("short_links.id", ondelete="CASCADE"))
    clicked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    user_agent: Mapped[str | None] = mapped_column(Text)
    is_robot: Mapped[bool] = mapped_column(Boolean, default=False)
    robot_reason: Mapped[str | None] = mapped_column(String(32))


class AttributionKind(enum.StrEnum):
    """How directly a message earned an order; the most direct wins."""

    COUPON = "coupon"  # the message's coupon was redeemed on the order
    CLICK = "click"  # ordered within the click window after a click on its link
    VIEW = "view"  # ordered within the view window after delivery


class Attribution(Base):
    """An order credited to one message (each order once): to the most direct, then the most
    recent message."""

    __tablename__ = "attributions"
    __table_args__ = (
        Index("ix_attributions_campaign_id", "campaign_id"),
        Index("ix_attributions_message_id", "message_id"),
        Index("ix_attributions_ordered_at", "ordered_at"),  # each run reads its window's
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    variant_id: Mapped[int | None] = mapped_column(Integer)
    trigger_id: Mapped[int | None] = mapped_column(Integer)
    member_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[AttributionKind] = mapped_column(_enum(AttributionKind))
    revenue_cents: Mapped[int] = mapped_column(Integer)
    ordered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
