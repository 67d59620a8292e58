"""attribution reads its window through indexes

After every order import and POST /orders:batch, attribution credits the last 60 days'
orders. It read every message (for deliveries since a moment), every click, every
attribution and every coupon to find that window's: seconds once a store holds millions of
messages and coupons, and growing with them. Each now has an index on the moment or the
redeemed order; delivered messages and redeemed coupons only (a plan writes a million
undelivered messages and unredeemed coupons, which then cost no entry).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERED = sa.text("delivered_at IS NOT NULL")
REDEEMED = sa.text("redeemed_order_ref IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_delivered_at",
            ["delivered_at"],
            unique=False,
            sqlite_where=DELIVERED,
            postgresql_where=DELIVERED,
        )
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index("ix_clicks_clicked_at", ["clicked_at"], unique=False)
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.create_index("ix_attributions_ordered_at", ["ordered_at"], unique=False)
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coupons_redeemed_order_ref",
            ["redeemed_order_ref"],
            unique=False,
            sqlite_where=REDEEMED,
            postgresql_where=REDEEMED,
        )


def downgrade() -> None:
    for table, index in (
        ("coupons", "ix_coupons_redeemed_order_ref"),
        ("attributions", "ix_attributions_ordered_at"),
        ("clicks", "ix_clicks_clicked_at"),
        ("messages", "ix_messages_delivered_at"),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(index)
