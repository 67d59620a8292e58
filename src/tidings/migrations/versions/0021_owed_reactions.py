"""reactions owed to imported orders are recorded until they run

An order import stores its orders and their points, then reacts to them in a transaction
of its own (receipts, cart reminders called off, large-purchase reminders). One that
stopped in between left its orders without receipts. The points' transaction now records
the reactions owed, and the reacting one deletes the record; the worker settles what an
import left.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "owed_reactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_order_id", sa.Integer(), nullable=False),
        sa.Column("last_order_id", sa.Integer(), nullable=False),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owed_reactions")),
    )


def downgrade() -> None:
    op.drop_table("owed_reactions")
