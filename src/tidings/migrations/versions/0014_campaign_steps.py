"""campaign steps: follow-up and countdown steps of a campaign, the step each message
belongs to (0: the campaign's first send), and recurring campaigns with their runs (one per
occurrence)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("after_minutes", sa.Integer(), nullable=True),
        sa.Column("at", tidings.db.UtcDateTime(), nullable=True),
        sa.Column("reaction", sa.String(length=32), nullable=True),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("planned_at", tidings.db.UtcDateTime(), nullable=True),
        sa.Column("plan_summary", sa.JSON(), nullable=True),
        sa.Column("created_at", tidings.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "number"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recurrence", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("recurring_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("occurrence_at", tidings.db.UtcDateTime(), nullable=True))
        batch_op.create_foreign_key(
            "fk_campaigns_recurring_id", "campaigns", ["recurring_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_unique_constraint(
            "uq_campaigns_recurring_id_occurrence_at", ["recurring_id", "occurrence_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_constraint("uq_campaigns_recurring_id_occurrence_at", type_="unique")
        batch_op.drop_constraint("fk_campaigns_recurring_id", type_="foreignkey")
        batch_op.drop_column("occurrence_at")
        batch_op.drop_column("recurring_id")
        batch_op.drop_column("recurrence")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("step")
    op.drop_table("campaign_steps")
