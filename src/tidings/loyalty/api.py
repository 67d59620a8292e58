"""REST endpoints of the loyalty domain: coupons listed by member, campaign or state; a till
looks one up and redeems it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from tidings import clock
from tidings.http import MAX_ROW_ID, DbSession, Page, PagingQuery, problem, require_scope
from tidings.loyalty import coupons
from tidings.loyalty.coupon_search import find_coupons
from tidings.loyalty.models import CouponStatus
from tidings.loyalty.schemas import Coupon, CouponRedeem

router = APIRouter(tags=["coupons"])
Problems: dict[int | str, dict[str, Any]] = {
    404: {"description": "No coupon has this code."},
    409: {"description": "Expired, not yet valid, already used, void or another member's."},
    422: {"description": "The code looks mistyped, or the order is below the minimum spend."},
}
TITLES = {404: "Unknown coupon", 409: "Coupon cannot be used", 422: "Coupon refused"}


def _refused(error: coupons.CouponRefused) -> Any:
    return problem(
        error.status, TITLES.get(error.status, "Refused"), str(error), reason=error.reason
    )


@router.get("/coupons", response_model=Page[Coupon], dependencies=[require_scope("coupons:read")])
def list_coupons(
    request: Request,
    db_session: DbSession,
    paging: PagingQuery,
    member_id: int | None = Query(None, ge=1, le=MAX_ROW_ID, description="One member's."),
    campaign_id: int | None = Query(None, ge=1, le=MAX_ROW_ID, description="One campaign's."),
    status: CouponStatus | None = Query(None, description="Only coupons in this state."),
) -> Page[Coupon]:
    """Coupons, newest first, filtered by member, campaign and state, a page at a time."""
    found, has_more = find_coupons(
        db_session=db_session,
        member_id=member_id,
        campaign_id=campaign_id,
        status=status,
        page=paging.page,
        per_page=paging.per_page,
    )
    return Page[Coupon](
        items=[Coupon(**coupons.describe(db_session=db_session, coupon=c)) for c in found],
        page=paging.page,
        per_page=paging.per_page,
        next=paging.next_link(request, has_more),
    )


@router.get(
    "/coupons/{code}",
    response_model=Coupon,
    responses=Problems,
    dependencies=[require_scope("coupons:read")],
)
def show_coupon(code: str, db_session: DbSession) -> Any:
    """One coupon: its worth, validity, owner and redemption."""
    try:
        coupon = coupons.get(db_session=db_session, code=code)
    except coupons.CouponRefused as error:
        return _refused(error)
    return coupons.describe(db_session=db_session, coupon=coupon)


@router.post(
    "/coupons/{code}/redeem",
    response_model=Coupon,
    responses=Problems,
    dependencies=[require_scope("coupons:redeem")],
)
def redeem_coupon(code: str, body: CouponRedeem, db_session: DbSession) -> Any:
    """Redeems a coupon on the till's order; the same order again gets the same answer."""
    try:
        coupon = coupons.redeem(
            db_session=db_session,
            code=code,
            order_ref=body.order_id,
            amount_cents=body.amount_cents,
            member_id=body.member_id,
            phone=body.phone,
            now=clock.now(),
        )
    except coupons.CouponRefused as error:
        return _refused(error)
    return coupons.describe(db_session=db_session, coupon=coupon)
