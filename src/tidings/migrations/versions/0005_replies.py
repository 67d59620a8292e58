"""replies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_message_id", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("in_reply_to_message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["in_reply_to_message_id"],
            ["messages.id"],
            name=op.f("fk_replies_in_reply_to_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_replies_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sa.UniqueConstraint("provider", "provider_message_id", name=op.f("uq_replies_provider")),
    )
    with op.batch_alter_table("replies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_replies_member_id_received_at", ["member_id", "received_at"], unique=False
        )
        batch_op.create_index(
            "ix_replies_phone_received_at", ["phone", "received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("replies", schema=None) as batch_op:
        batch_op.drop_index("ix_replies_phone_received_at")
        batch_op.drop_index("ix_replies_member_id_received_at")
    op.drop_table("replies")
