"""notifications: transactional sends of integrators with their idempotency keys, status
callbacks to post, verification codes (keyed hashes only), and a campaign's message category

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "notification",
                "verification",
                name="notificationkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("callback_url", sa.String(length=500), nullable=True),
        sa.Column("notified_state", sa.String(length=16), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_notifications_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notifications_idempotency_key")),
    )
    op.create_index(
        "ix_notifications_callback_url_notified_state",
        "notifications",
        ["callback_url", "notified_state"],
    )
    op.create_table(
        "callback_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending", "delivered", "failed", name="callbackstate", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("delivered_at", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_callback_deliveries_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_deliveries")),
        sa.UniqueConstraint(
            "notification_id", "status", name=op.f("uq_callback_deliveries_notification_id")
        ),
    )
    op.create_index(
        "ix_callback_deliveries_state_next_attempt_at",
        "callback_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_table(
        "verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("verified_at", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("masked_text", sa.Text(), nullable=False),
        sa.Column("scrubbed_at", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_verifications_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifications")),
        sa.UniqueConstraint("public_id", name=op.f("uq_verifications_public_id")),
    )
    op.create_index("ix_verifications_phone_created_at", "verifications", ["phone", "created_at"])
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("category", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("category")
    op.drop_index("ix_verifications_phone_created_at", table_name="verifications")
    op.drop_table("verifications")
    op.drop_index("ix_callback_deliveries_state_next_attempt_at", table_name="callback_deliveries")
    op.drop_table("callback_deliveries")
    op.drop_index("ix_notifications_callback_url_notified_state", table_name="notifications")
    op.drop_table("notifications")
