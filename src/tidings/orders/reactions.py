"""What new orders set off, owed until it has run.

An order import stores its orders, lines and points, then reacts to the new orders in a
transaction of its own (on SQLite the two check references differently): receipts fired
and cart reminders called off, anti-fraud reminders after large purchases, credit to the
messages that earned them. The transaction that gives the orders their points also records
the reactions owed (`owe`); the one that reacts settles them. An import that stopped in
between leaves the record, and the worker's catch-up reacts to those orders, and only to
them: orders of an import still storing have no points yet and must not get receipts. An
import that stopped before its points leaves orders that the worker's loyalty upkeep
credits later (`tidings.loyalty.service.accrue_orders`), owing their reactions as it does.

Reacting to an order twice does nothing twice: a receipt fires once per order, a reminder
carries the order in its idempotency key, and a cart reminder is called off by the order's
time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from tidings import clock
from tidings.config import Settings
from tidings.db import session_scope, writing_scope
from tidings.notifications.large_purchase import notify_large_orders
from tidings.orders.models import LAST_ORDER_ID, Order, OwedReactions
from tidings.tracking.credits import attribute_orders
from tidings.triggers.reactions import orders_arrived

# How long reactions owed wait before the worker takes them over: the import that owes
# them reacts right after its commit, unless it stopped.
OWED_GRACE = timedelta(minutes=1)


def react_to_orders(
    db_session: Session,
    *,
    first_order_id: int,
    settings: Settings,
    last_order_id: int = LAST_ORDER_ID,
) -> None:
    """Reacts to the orders from `first_order_id` to `last_order_id`, then credits the
    recent orders to the messages that earned them. Never commits."""
    now = clock.now()
    orders_arrived(db_session, first_order_id=first_order_id, last_order_id=last_order_id, now=now)
    notify_large_orders(
        db_session=db_session,
        first_order_id=first_order_id,
        last_order_id=last_order_id,
        settings=settings,
        now=now,
    )
    attribute_orders(db_session=db_session)


def owe(
    db_session: Session, *, first_order_id: int, last_order_id: int | None = None
) -> OwedReactions | None:
    """Records that the orders from `first_order_id` to `last_order_id` (default: those
    stored so far) are owed their reactions, in the caller's transaction; None when there
    are none."""
    last = last_order_id
    if last is None:
        last = db_session.execute(select(func.max(Order.id))).scalar()
    if last is None or last < first_order_id:
        return None
    owed = OwedReactions(first_order_id=first_order_id, last_order_id=int(last))
    db_session.add(owed)
    db_session.flush()
    return owed


def settle(db_session: Session, owed: OwedReactions | None, *, settings: Settings) -> None:
    """Reacts to the orders `owed` names and deletes the record, in the caller's
    transaction (which it never commits)."""
    if owed is None:
        return
    react_to_orders(
        db_session,
        first_order_id=owed.first_order_id,
        last_order_id=owed.last_order_id,
        settings=settings,
    )
    db_session.execute(delete(OwedReactions).where(OwedReactions.id == owed.id))


def catch_up(engine: Engine, settings: Settings, now: datetime) -> int:
    """Reacts to the orders of imports that stopped before reacting (their records older
    than `OWED_GRACE`), each in a transaction of its own; returns how many records it
    settled. Takes the write lock only when there are some."""
    with session_scope(engine) as session:
        owed = session.scalars(
            select(OwedReactions.id)
            .where(OwedReactions.created_at <= now - OWED_GRACE)
            .order_by(OwedReactions.id)
        ).all()
    settled = 0
    for owed_id in owed:
        with writing_scope(engine) as session:
            record = session.get(OwedReactions, owed_id)  # None: settled meanwhile
            settle(session, record, settings=settings)
            settled += record is not None
    return settled
