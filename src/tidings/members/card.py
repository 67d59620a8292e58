"""Everything a member's page in the console shows: the member, their profile, points,
coupons, consent history and timeline, each bounded so that one page stays small."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.inbound.timeline import member_timeline
from tidings.loyalty.models import Coupon, PointsLot
from tidings.members.models import ConsentEvent, Member, Store
from tidings.profiles.models import Profile

CARD_ROWS = 20  # points lots, coupons and consent events shown
TIMELINE_ROWS = 50


def member_card(*, db_session: Session, member: Member) -> dict[str, Any]:
    """The member's page: profile, points lots, coupons, consent history and timeline."""
    store = db_session.get(Store, member.store_id) if member.store_id else None
    lots = db_session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member.id)
        .order_by(PointsLot.occurred_at.desc(), PointsLot.id.desc())
        .limit(CARD_ROWS)
    )
    coupons = db_session.scalars(
        select(Coupon)
        .where(Coupon.member_id == member.id)
        .order_by(Coupon.id.desc())
        .limit(CARD_ROWS)
    )
    consent = db_session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.member_id == member.id)
        .order_by(ConsentEvent.occurred_at.desc(), ConsentEvent.id.desc())
        .limit(CARD_ROWS)
    )
    return {
        "member": member,
        "store": store,
        "profile": db_session.get(Profile, member.id),
        "lots": list(lots),
        "coupons": list(coupons),
        "consent": list(consent),
        "timeline": member_timeline(
            db_session=db_session, member_id=member.id, limit=TIMELINE_ROWS
        ),
    }


def members_by_ids(*, db_session: Session, member_ids: list[int]) -> list[Member]:
    """The members of `member_ids`, in that order (a segment's sample)."""
    if not member_ids:
        return []
    found = {m.id: m for m in db_session.scalars(select(Member).where(Member.id.in_(member_ids)))}
    return [found[i] for i in member_ids if i in found]
