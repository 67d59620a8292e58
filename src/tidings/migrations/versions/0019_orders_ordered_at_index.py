"""orders: an index on ordered_at

Every order import and every POST /orders:batch credits the orders of the last 60 days to
messages (tidings.tracking.credits), and reports and date triggers read orders since a
moment too; without an index each of them read the whole orders table (0.7 s at 3.3
million orders, growing with the history).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_ordered_at", ["ordered_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_ordered_at")
