"""Finding coupons for an integrator: a member's, a campaign's, or those in one state, newest
first, a page at a time (the code index answers a single coupon; see coupons.get)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.loyalty.models import Coupon, CouponStatus


def find_coupons(
    *,
    db_session: Session,
    member_id: int | None = None,
    campaign_id: int | None = None,
    status: CouponStatus | None = None,
    page: int = 1,
    per_page: int = 25,
) -> tuple[list[Coupon], bool]:
    """One page of the coupons matching every filter given, and whether another page follows."""
    statement = select(Coupon)
    if member_id is not None:
        statement = statement.where(Coupon.member_id == member_id)
    if campaign_id is not None:
        statement = statement.where(Coupon.campaign_id == campaign_id)
    if status is not None:
        statement = statement.where(Coupon.status == status)
    rows = list(
        db_session.scalars(
            statement.order_by(Coupon.id.desc())
            .offset((max(page, 1) - 1) * per_page)
            .limit(per_page + 1)
        )
    )
    return rows[:per_page], len(rows) > per_page
