"""triggers: standing rules (built-in and the operator's) and their firings, one per member
per occasion

Built-in triggers are not rows of this migration: they are added on first use
(`tidings.triggers.service.ensure_builtins`), with the defaults of the catalogue.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:13:35.497250
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.Column("exit_condition", sa.Text(), nullable=True),
        sa.Column("event_type", sa.String(length=50), nullable=True),
        sa.Column("date_field", sa.String(length=50), nullable=True),
        sa.Column("delay_minutes", sa.Integer(), nullable=False),
        sa.Column("expiry_minutes", sa.Integer(), nullable=True),
        sa.Column("offer_type", sa.String(length=64), nullable=True),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
        sa.UniqueConstraint("name", name=op.f("uq_triggers_name")),
    )
    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("event_at", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("fired_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("dedupe_key", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("skip_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_trigger_firings_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_trigger_firings_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_firings")),
        sa.UniqueConstraint(
            "trigger_id", "member_id", "key", name=op.f("uq_trigger_firings_trigger_id")
        ),
    )
    with op.batch_alter_table("trigger_firings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trigger_firings_member_id_fired_at", ["member_id", "fired_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("trigger_firings", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_firings_member_id_fired_at")

    op.drop_table("trigger_firings")
    op.drop_table("triggers")
