"""Coupon operations: issue one (for points), look one up, redeem one at the POS.

A coupon is redeemed once, on one order; asking again for the same order gets the same
answer, so a POS may retry safely. Every refusal carries a stable reason code, the HTTP
status the API answers with, and a message a cashier can act on. Functions take a session
and never commit. Campaign coupons are issued in bulk by `tidings.loyalty.offers`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tidings.config import get_settings
from tidings.dispatch.models import NOT_PLANNED
from tidings.loyalty.codes import is_well_formed, normalise, random_code
from tidings.loyalty.models import Coupon, CouponKind, CouponStatus, LotKind, PointsLot
from tidings.members.models import Member

_CODE_TRIES = 8  # a random code clashing even once is already a one-in-a-billion event
# A message that ended in one of these never reached the member: its coupon is withdrawn.
UNDELIVERED = ("failed", "expired", "skipped")


class CouponRefused(ValueError):
    """A coupon cannot be used as asked: `reason` is a stable code, `status` the HTTP
    status, and the message says what the cashier can do."""

    def __init__(self, reason: str, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class CouponTerms:
    """What a coupon is worth and when it may be used: a value or a percentage off, a
    minimum spend, and the days it stays valid (None: no end); for a campaign's offer, how
    many coupons each member gets."""

    kind: CouponKind = CouponKind.VALUE
    value_cents: int = 0
    discount_percent: int = 0
    min_spend_cents: int = 0
    valid_days: int | None = None
    per_member: int = 1

    def as_json(self) -> dict[str, Any]:
        """The terms as kept in a campaign's `coupon` column."""
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> CouponTerms:
        """The terms from a campaign's `coupon` column."""
        return cls(**{**value, "kind": CouponKind(value.get("kind", "value"))})

    def valid_until(self, start: datetime) -> datetime | None:
        """The end of the validity window of a coupon valid from `start`."""
        return None if self.valid_days is None else start + timedelta(days=self.valid_days)


def issue(
    *,
    db_session: Session,
    member_id: int | None,
    source: str,
    terms: CouponTerms,
    now: datetime,
    campaign_id: int | None = None,
) -> Coupon:
    """Issues one coupon with a fresh random code (checked against every code issued)."""
    for _ in range(_CODE_TRIES):
        code = random_code()
        if db_session.scalar(select(Coupon.id).where(Coupon.code == code)) is None:
            break
    else:
        raise RuntimeError("no free coupon code found; the random source cannot be working")
    coupon = Coupon(
        code=code,
        member_id=member_id,
        campaign_id=campaign_id,
        source=source,
        kind=terms.kind,
        value_cents=terms.value_cents,
        discount_percent=terms.discount_percent,
        min_spend_cents=terms.min_spend_cents,
        valid_from=now,
        valid_until=terms.valid_until(now),
        status=CouponStatus.ISSUED,
    )
    db_session.add(coupon)
    db_session.flush()
    return coupon


def get(*, db_session: Session, code: str, for_update: bool = False) -> Coupon:
    """Finds a coupon by its code as typed; says whether an unknown code looks mistyped."""
    wanted = normalise(code)
    query = select(Coupon).where(Coupon.code == wanted)
    coupon = db_session.scalars(query.with_for_update() if for_update else query).first()
    if coupon is not None:
        return coupon
    if not is_well_formed(wanted):
        raise CouponRefused(
            "mistyped",
            f"coupon code '{code}' looks mistyped: its check character does not match;"
            " ask the member to read it again",
            status=422,
        )
    raise CouponRefused("unknown", f"no coupon has the code '{code}'", status=404)


def discount_of(coupon: Coupon, amount_cents: int) -> int:
    """What the coupon takes off an order of `amount_cents` (never more than the order)."""
    if coupon.kind is CouponKind.DISCOUNT:
        return amount_cents * coupon.discount_percent // 100
    return min(coupon.value_cents, amount_cents)


def _check_member(
    db_session: Session, coupon: Coupon, member_id: int | None, phone: str | None
) -> None:
    if coupon.member_id is None or (member_id is None and phone is None):
        return
    owner = db_session.get(Member, coupon.member_id)
    phone_matches = phone is None or (owner is not None and _same_phone(owner.phone, phone))
    if (member_id is not None and member_id != coupon.member_id) or not phone_matches:
        raise CouponRefused(
            "other_member",
            f"coupon {coupon.code} belongs to another member; it can only be used by the"
            " member it was sent to",
        )


def _same_phone(stored: str | None, given: str) -> bool:
    from tidings.members.phone import classify

    e164, _status, _reason = classify(given, region=get_settings().default_region)
    return stored is not None and stored == (e164 or given)


def _check_usable(coupon: Coupon, *, order_ref: str, amount_cents: int, now: datetime) -> None:
    if coupon.status is CouponStatus.REDEEMED:
        raise CouponRefused(
            "already_used",
            f"coupon {coupon.code} was already used on order {coupon.redeemed_order_ref}"
            f" at {coupon.redeemed_at:%Y-%m-%d %H:%M} UTC",
        )
    if coupon.status is CouponStatus.VOID:
        raise CouponRefused("void", f"coupon {coupon.code} was withdrawn and cannot be used")
    if now < coupon.valid_from:
        raise CouponRefused(
            "not_yet_valid",
            f"coupon {coupon.code} is valid from {coupon.valid_from:%Y-%m-%d %H:%M} UTC",
        )
    if coupon.valid_until is not None and now >= coupon.valid_until:
        raise CouponRefused(
            "expired", f"coupon {coupon.code} expired at {coupon.valid_until:%Y-%m-%d %H:%M} UTC"
        )
    if amount_cents < coupon.min_spend_cents:
        short = coupon.min_spend_cents - amount_cents
        raise CouponRefused(
            "below_min_spend",
            f"coupon {coupon.code} needs a spend of at least"
            f" {coupon.min_spend_cents / 100:.2f} yuan; this order is {short / 100:.2f} short",
            status=422,
        )


def redeem(
    *,
    db_session: Session,
    code: str,
    order_ref: str,
    amount_cents: int,
    now: datetime,
    member_id: int | None = None,
    phone: str | None = None,
) -> Coupon:
    """Redeems a coupon on the POS's order; the same order again gets the same answer."""
    if amount_cents < 0:
        raise CouponRefused("bad_amount", "the order amount cannot be negative", status=422)
    coupon = get(db_session=db_session, code=code, for_update=True)
    if coupon.status is CouponStatus.REDEEMED and coupon.redeemed_order_ref == order_ref:
        return coupon
    _check_member(db_session, coupon, member_id, phone)
    _check_usable(coupon, order_ref=order_ref, amount_cents=amount_cents, now=now)
    coupon.status = CouponStatus.REDEEMED
    coupon.redeemed_at = now
    coupon.redeemed_order_ref = order_ref
    coupon.redeemed_amount_cents = amount_cents
    db_session.flush()
    return coupon


def void_campaign(*, db_session: Session, campaign_id: int) -> int:
    """Voids a cancelled campaign's coupons not redeemed; returns how many."""
    result = db_session.execute(
        text(
            "UPDATE coupons SET status = 'void' WHERE campaign_id = :campaign AND status = 'issued'"
        ),
        {"campaign": campaign_id},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def void_undelivered(*, db_session: Session) -> int:
    """Voids, in bulk, the issued campaign coupons whose member's every message of the
    campaign ended failed, expired or skipped; returns how many."""
    ended = ", ".join(f"'{state}'" for state in UNDELIVERED)
    # Driven from the few ended messages (their state index, which SQLite uses only for a
    # query that says it holds no planned one), each finding its coupon through the
    # (campaign_id, member_id) index: the many issued coupons are not scanned.
    result = db_session.execute(
        text(
            "UPDATE coupons SET status = 'void' WHERE status = 'issued' AND source = 'campaign'"
            " AND (campaign_id, member_id) IN (SELECT campaign_id, member_id FROM messages"
            f" WHERE state IN ({ended}) AND {NOT_PLANNED} AND campaign_id IS NOT NULL)"
            " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = coupons.campaign_id"
            f" AND m.member_id = coupons.member_id AND m.state NOT IN ({ended}))"
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def describe(*, db_session: Session, coupon: Coupon) -> dict[str, Any]:
    """A coupon as the API and `tidings coupon show` give it."""
    gift = db_session.scalar(
        select(PointsLot.note).where(
            PointsLot.coupon_id == coupon.id, PointsLot.kind == LotKind.REDEMPTION
        )
    )
    discount = (
        None
        if coupon.redeemed_amount_cents is None
        else discount_of(coupon, coupon.redeemed_amount_cents)
    )
    return {
        "code": coupon.code,
        "status": coupon.status.value,
        "source": coupon.source,
        "member_id": coupon.member_id,
        "campaign_id": coupon.campaign_id,
        "kind": coupon.kind.value,
        "value_cents": coupon.value_cents,
        "discount_percent": coupon.discount_percent,
        "min_spend_cents": coupon.min_spend_cents,
        "valid_from": coupon.valid_from,
        "valid_until": coupon.valid_until,
        "gift": gift[len("gift ") :] if gift and gift.startswith("gift ") else None,
        "redeemed_at": coupon.redeemed_at,
        "order_id": coupon.redeemed_order_ref,
        "amount_cents": coupon.redeemed_amount_cents,
        "discount_cents": discount,
    }
