"""delivery receipts: no per-row message check; the provider id index holds unmatched ones only

A worker stores a receipt for every message a provider took, thousands a second. The foreign
key on the receipt's message made the store look up the message again for each one (and on
PostgreSQL lock its row just before the receipt's own update of it), a tenth of the server's
work of a send; the id is the one the receipt was matched to a moment before, in the same
transaction, and a message a provider took is never deleted (a plan replaces only planned and
skipped ones). Receipts are looked up by the provider's id only while they name no message,
so that index holds only those.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-02 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNMATCHED = sa.text("message_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("delivery_receipts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_delivery_receipts_message_id_messages", type_="foreignkey")
        batch_op.drop_index("ix_delivery_receipts_provider_provider_message_id")
        batch_op.create_index(
            "ix_delivery_receipts_provider_provider_message_id",
            ["provider", "provider_message_id"],
            unique=False,
            sqlite_where=UNMATCHED,
            postgresql_where=UNMATCHED,
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_receipts_provider_provider_message_id")
        batch_op.create_index(
            "ix_delivery_receipts_provider_provider_message_id",
            ["provider", "provider_message_id"],
            unique=False,
        )
        batch_op.create_foreign_key(
            "fk_delivery_receipts_message_id_messages",
            "messages",
            ["message_id"],
            ["id"],
            ondelete="SET NULL",
        )
