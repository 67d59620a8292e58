"""campaign plan summary and rollout progress

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stage_started_at", tidings.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("rollout_report", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("plan_summary", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("planned_at", tidings.db.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("planned_at")
        batch_op.drop_column("plan_summary")
        batch_op.drop_column("rollout_report")
        batch_op.drop_column("stage_started_at")
