"""Tables of products, orders and their lines, and behaviour events (cart, page view, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


class Product(Base):
    """An item of the catalogue; consumables carry the days one pack lasts."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    pack_size_days: Mapped[int | None] = mapped_column(Integer)
    price_cents: Mapped[int | None] = mapped_column(Integer)


LAST_ORDER_ID = 2**63 - 1  # above every order id: a range of orders up to it has no end


class Order(Base):
    """A purchase, identified by the retailer's own order id. Money in integer cents."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_member_id_ordered_at", "member_id", "ordered_at"),
        # Orders since a moment: attribution after every import, reports, date triggers.
        Index("ix_orders_ordered_at", "ordered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    ordered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    amount_cents: Mapped[int] = mapped_column(Integer)
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class OrderItem(Base):
    """One line of an order."""

    __tablename__ = "order_items"
    __table_args__ = (Index("ix_order_items_order_id", "order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    amount_cents: Mapped[int] = mapped_column(Integer)
    discounted: Mapped[bool] = mapped_column(Boolean, default=False)


class Event(Base):
    """Something a member did or that happened around them: cart, page view, location, weather."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_member_id_kind_occurred_at", "member_id", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class OwedReactions(Base):
    """Orders an import stored whose reactions (receipts, cart reminders called off,
    large-purchase reminders) have not run yet. An import writes the row with its orders'
    points and deletes it as it reacts, in a transaction of its own; one that stopped in
    between leaves the row, and the worker reacts to those orders."""

    __tablename__ = "owed_reactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_order_id: Mapped[int] = mapped_column(Integer)
    last_order_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class ChangedRows(Base):
    """Where the rows of `orders` or `order_items` were last changed in place (updated or
    deleted rather than appended), which a columnar copy of the table (`tidings.scancopies`)
    must read again. On SQLite, triggers keep it (migration 0022): each change counts in
    `changes` and lowers `first_changed_id` to its row's id; a saved copy clears the id.
    `store_key`, drawn as the store is made, tells a copy of another store."""

    __tablename__ = "changed_rows"

    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_changed_id: Mapped[int | None] = mapped_column(Integer)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    store_key: Mapped[str] = mapped_column(String(32))
