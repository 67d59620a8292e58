"""the reactions to new orders keep a mark of how far they went

An order import stores its orders, then reacts to them in a transaction of its own
(receipts, cart reminders called off, large-purchase reminders). One that stopped in between
left its orders without receipts. The mark (the highest order id a reaction covered) lets
the next reaction, or the worker, cover them. A store upgraded to it has reacted to every
order it holds: the mark starts at the last one.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_reactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("through_order_id", sa.Integer(), nullable=False),
        sa.Column("reacted_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_reactions")),
    )
    now = sa.bindparam("now", datetime.now(UTC), type_=tidings.db.UtcDateTime(timezone=True))
    op.execute(
        sa.text(
            "INSERT INTO order_reactions (id, through_order_id, reacted_at)"
            " SELECT 1, COALESCE(MAX(id), 0), :now FROM orders"
        ).bindparams(now)
    )


def downgrade() -> None:
    op.drop_table("order_reactions")
