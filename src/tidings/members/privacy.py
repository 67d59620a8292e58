"""A member's rights over their data: an export of everything kept about them, and erasure,
which removes the personal data and keeps the phone only as a suppression hash."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns.sources import phone_hash
from tidings.dispatch.models import Message, MessageState
from tidings.inbound.models import Reply, Ticket
from tidings.inbound.timeline import member_timeline
from tidings.loyalty.models import Coupon, PointsLot
from tidings.members.models import ConsentEvent, Member, Suppression, SuppressionReason
from tidings.members.service import member_view
from tidings.profiles.models import Profile

ERASED_PHONE = ""  # what a sent message keeps in place of an erased member's phone
ERASED_TEXT = "(erased)"
EXPORT_TIMELINE_ENTRIES = 10_000


class MemberErased(ValueError):
    """The member was erased already; nothing personal is left to export or erase."""


def _columns(row: Any) -> dict[str, Any]:
    values = {column.key: getattr(row, column.key) for column in row.__table__.columns}
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in values.items()
    }


def export_member(*, db_session: Session, member: Member) -> dict[str, Any]:
    """Everything kept about the member, as JSON-ready data."""
    if member.erased_at is not None:
        raise MemberErased(f"member {member.id} was erased; nothing personal is left to export")
    profile = db_session.get(Profile, member.id)
    consent = db_session.scalars(
        select(ConsentEvent).where(ConsentEvent.member_id == member.id).order_by(ConsentEvent.id)
    )
    lots = db_session.scalars(select(PointsLot).where(PointsLot.member_id == member.id))
    coupons = db_session.scalars(select(Coupon).where(Coupon.member_id == member.id))
    return {
        "member": member_view(db_session=db_session, member=member),
        "attributes": member.attributes or {},
        "profile": _columns(profile) if profile else None,
        "consent": [_columns(event) for event in consent],
        "points": [_columns(lot) for lot in lots],
        "coupons": [_columns(coupon) for coupon in coupons],
        "timeline": member_timeline(
            db_session=db_session, member_id=member.id, limit=EXPORT_TIMELINE_ENTRIES
        ),
    }


def erase_member(*, db_session: Session, member: Member, source: str) -> None:
    """Removes the member's personal data; the phone survives only as a suppression hash.
    `source` says who asked (it is kept with the suppression)."""
    if member.erased_at is not None:
        raise MemberErased(f"member {member.id} was erased already")
    phone = member.phone
    if phone:
        hashed = phone_hash(phone)
        exists = db_session.scalar(
            select(Suppression.id).where(
                Suppression.phone_hash == hashed, Suppression.reason == SuppressionReason.ERASED
            )
        )
        if exists is None:
            db_session.add(
                Suppression(phone_hash=hashed, reason=SuppressionReason.ERASED, source=source)
            )
        _forget_phone(db_session, member.id, phone)
    for field in ("phone", "code", "name", "gender", "birthday", "attributes", "tags"):
        setattr(member, field, None)
    member.erased_at = clock.now()
    db_session.flush()


def _forget_phone(db_session: Session, member_id: int, phone: str) -> None:
    unsent = (MessageState.PLANNED, MessageState.QUEUED)
    db_session.execute(
        update(Message)
        .where(Message.member_id == member_id, Message.state.in_(unsent))
        .values(state=MessageState.CANCELLED, skip_reason="erased")
    )
    db_session.execute(
        update(Message)
        .where(Message.member_id == member_id)
        .values(phone=ERASED_PHONE, text=ERASED_TEXT)
    )
    db_session.execute(
        update(Reply).where(Reply.phone == phone).values(phone=ERASED_PHONE, text=ERASED_TEXT)
    )
    # One unsolved ticket per phone is a unique index, so each erased member's tickets
    # get a placeholder of their own rather than a shared empty phone.
    db_session.execute(
        update(Ticket)
        .where(Ticket.phone == phone)
        .values(phone=f"erased:{member_id}", subject=ERASED_TEXT)
    )
