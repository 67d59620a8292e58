"""What the coupon endpoints take in and give out (money in integer cents)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tidings.http import MAX_CENTS, MAX_ROW_ID


class CouponRedeem(BaseModel):
    """A till's request to redeem a coupon on one of its orders."""

    order_id: str = Field(min_length=1, max_length=100, description="The till's own order id.")
    amount_cents: int = Field(ge=0, le=MAX_CENTS, description="The order's amount in cents (分).")
    member_id: int | None = Field(
        None, ge=1, le=MAX_ROW_ID, description="The member at the till, if known."
    )
    phone: str | None = Field(None, max_length=32, description="Or the member's phone.")


class Coupon(BaseModel):
    """A coupon: its worth, validity, owner and, once used, the order it was used on."""

    code: str
    status: str
    source: str
    member_id: int | None
    campaign_id: int | None
    kind: str
    value_cents: int
    discount_percent: int
    min_spend_cents: int
    valid_from: datetime
    valid_until: datetime | None
    gift: str | None
    redeemed_at: datetime | None
    order_id: str | None
    amount_cents: int | None
    discount_cents: int | None
