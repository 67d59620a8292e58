"""What new orders set off, and how far that has gone.

An order import stores its orders, lines and points, then reacts to the new orders in a
transaction of its own: receipts fired and cart reminders called off, anti-fraud reminders
after large purchases, credit to the messages that earned them. The `order_reactions` row
holds the highest order id a reaction covered, so an import that stopped between the two
leaves nothing behind: the next reaction starts from that mark (or from its own first order,
when a concurrent import's orders took lower ids), and the worker catches up on its own.

Reacting to an order twice does nothing twice: a receipt fires once per order, a reminder
carries the order in its idempotency key, and a cart reminder is called off by the order's
time, so a reaction that covers orders again is harmless.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.orm import Session

from tidings import clock
from tidings.config import Settings
from tidings.db import UtcDateTime, is_sqlite, session_scope, writing_scope
from tidings.notifications.large_purchase import notify_large_orders
from tidings.tracking.credits import attribute_orders
from tidings.triggers.reactions import orders_arrived

MARK_ID = 1  # the one row of order_reactions


def react_to_orders(db_session: Session, *, first_order_id: int, settings: Settings) -> None:
    """Reacts to the orders from `first_order_id` on, and to those before it that no
    reaction covered yet, then credits the recent orders to the messages that earned them.
    Never commits."""
    react_to_new_orders(db_session, first_order_id=first_order_id, settings=settings)
    attribute_orders(db_session=db_session)


def react_to_new_orders(
    db_session: Session,
    *,
    settings: Settings,
    first_order_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Fires what the orders past the mark (and those from `first_order_id` on) set off and
    moves the mark to the last order; returns the orders that were past it. Never commits."""
    now = now or clock.now()
    reacted = _reacted_through(db_session)
    last = _last_order_id(db_session)
    first = reacted + 1 if first_order_id is None else min(first_order_id, reacted + 1)
    if last >= first:
        orders_arrived(db_session, first_order_id=first, now=now)
        notify_large_orders(db_session=db_session, first_order_id=first, settings=settings, now=now)
    if last > reacted:
        db_session.execute(
            text(
                "INSERT INTO order_reactions (id, through_order_id, reacted_at)"
                " VALUES (:id, :last, :now) ON CONFLICT (id) DO UPDATE"
                " SET through_order_id = :last, reacted_at = :now"
            ).bindparams(bindparam("now", type_=UtcDateTime())),
            {"id": MARK_ID, "last": last, "now": now},
        )
    return max(last - reacted, 0)


def catch_up(engine: Engine, settings: Settings, now: datetime) -> int:
    """Reacts to the orders stored past the mark (an import stopped before it reacted);
    returns how many there were. Takes the write lock only when there are some."""
    with session_scope(engine) as session:
        behind = _last_order_id(session) > _reacted_through(session, lock=False)
    if not behind:
        return 0
    with writing_scope(engine) as session:
        return react_to_new_orders(session, settings=settings, now=now)


def _reacted_through(db_session: Session, *, lock: bool = True) -> int:
    """The highest order id a reaction covered (0 before the first). With `lock`, held on
    PostgreSQL until the transaction ends, so two reactions take turns."""
    locking = " FOR UPDATE" if lock and not is_sqlite(db_session) else ""
    mark = db_session.execute(
        text(f"SELECT through_order_id FROM order_reactions WHERE id = :id{locking}"),
        {"id": MARK_ID},
    ).scalar()
    return int(mark or 0)


def _last_order_id(db_session: Session) -> int:
    return int(db_session.execute(text("SELECT COALESCE(MAX(id), 0) FROM orders")).scalar_one())
