"""The large-purchase notice: after an order above TIDINGS_LARGE_PURCHASE_CENTS, the member
gets the anti-fraud security reminder the articles ask for ("消费预警：大额消费后的防诈骗
提醒"), once per order, as a transactional message through the same path as the API's."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.notifications import service
from tidings.notifications.schemas import MessageCreate
from tidings.orders.models import LAST_ORDER_ID

KEY_PREFIX = "large-purchase:order:"  # idempotency key of an order's notice: once per order


def _amount(cents: int) -> str:
    """Yuan as the notice shows them: 2,680 or 2,680.50."""
    yuan = f"{cents / 100:,.2f}"
    return yuan.removesuffix(".00")


def notify_large_orders(
    *,
    db_session: Session,
    first_order_id: int,
    settings: Settings,
    now: datetime,
    last_order_id: int = LAST_ORDER_ID,
) -> int:
    """Sends the reminder for each order from `first_order_id` to `last_order_id` above the
    amount and recent enough; returns how many were queued. An order's second import sends
    nothing."""
    if settings.large_purchase_cents <= 0:
        return 0
    rows = db_session.execute(
        text(
            "SELECT id, member_id, amount_cents FROM orders WHERE id BETWEEN :first AND :last"
            " AND amount_cents > :least AND ordered_at >= :since ORDER BY id"
        ),
        {
            "first": first_order_id,
            "last": last_order_id,
            "least": settings.large_purchase_cents,
            "since": now - timedelta(hours=settings.large_purchase_hours),
        },
    ).all()
    requests = [
        MessageCreate(
            idempotency_key=f"{KEY_PREFIX}{order_id}",
            member_id=member_id,
            template=settings.large_purchase_text,
            values={"amount": _amount(amount)},
        )
        for order_id, member_id, amount in rows
    ]
    if not requests:
        return 0
    # A member without a usable phone is refused: there is no one to remind.
    outcome = service.send_many(
        db_session=db_session, requests=requests, settings=settings, now=now
    )
    return sum(1 for answer in outcome.answers.values() if answer.state == "queued")
