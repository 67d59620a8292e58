"""Tables of the points ledger (lots that accrue, are spent oldest first and expire) and of
coupons (unique codes a message carries and the POS redeems)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class LotKind(enum.StrEnum):
    """What a ledger entry records. Accruals are lots; the others draw lots down."""

    OPENING = "opening"  # the balance an import brought, as one lot
    ACCRUAL = "accrual"  # earned by an order
    REDEMPTION = "redemption"  # spent on a coupon or a gift
    EXPIRY = "expiry"  # what was left of lots past their date
    ADJUSTMENT = "adjustment"  # an operator's correction, with a note


class PointsLot(Base):
    """One entry of a member's points ledger. Points are signed (spending is negative);
    a lot that adds points keeps `remaining`, drawn down oldest-expiring first. An order
    accrues once: (kind, order_id) is unique."""

    __tablename__ = "points_lots"
    __table_args__ = (
        UniqueConstraint("kind", "order_id"),
        Index("ix_points_lots_member_id_expires_at", "member_id", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[LotKind] = mapped_column(_enum(LotKind))
    points: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class CouponKind(enum.StrEnum):
    """A coupon takes a sum off (value) or a percentage off (discount)."""

    VALUE = "value"
    DISCOUNT = "discount"


class CouponStatus(enum.StrEnum):
    """Where a coupon is in its life."""

    ISSUED = "issued"
    REDEEMED = "redeemed"
    VOID = "void"


class Coupon(Base):
    """One coupon: a unique, hard-to-guess code with a check character, for one member
    (or anyone, when `member_id` is empty), from a campaign, a trigger or a points redemption."""

    __tablename__ = "coupons"
    __table_args__ = (
        Index("ix_coupons_campaign_id_member_id", "campaign_id", "member_id"),
        Index("ix_coupons_member_id_status", "member_id", "status"),
        # Attribution finds the orders coupons were redeemed on; unredeemed ones (a plan
        # issues a million) have no entry.
        Index(
            "ix_coupons_redeemed_order_ref",
            "redeemed_order_ref",
            sqlite_where=text("redeemed_order_ref IS NOT NULL"),
            postgresql_where=text("redeemed_order_ref IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    # No foreign keys: a plan writes these in bulk for its members, just read (0015).
    member_id: Mapped[int | None] = mapped_column(Integer)
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    trigger_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), default="campaign")  # campaign|trigger|points
    kind: Mapped[CouponKind] = mapped_column(_enum(CouponKind), default=CouponKind.VALUE)
    value_cents: Mapped[int] = mapped_column(Integer, default=0)
    discount_percent: Mapped[int] = mapped_column(Integer, default=0)
    min_spend_cents: Mapped[int] = mapped_column(Integer, default=0)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[CouponStatus] = mapped_column(_enum(CouponStatus), default=CouponStatus.ISSUED)
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The POS's own order id and amount, kept as sent: the order itself may arrive later.
    redeemed_order_ref: Mapped[str | None] = mapped_column(String(100))
    redeemed_amount_cents: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
