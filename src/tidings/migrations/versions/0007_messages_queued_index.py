"""messages: claim index holds queued messages only

A plan writes a million planned or skipped messages that the claimer never looks at; only
queued ones go into the claim index, and a plain state index serves the other state queries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("state = 'queued'")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_state_priority_send_at")
        batch_op.create_index("ix_messages_state", ["state"], unique=False)
        batch_op.create_index(
            "ix_messages_queued_priority_send_at",
            ["state", "priority", "send_at", "id"],
            unique=False,
            sqlite_where=QUEUED,
            postgresql_where=QUEUED,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_queued_priority_send_at")
        batch_op.drop_index("ix_messages_state")
        batch_op.create_index(
            "ix_messages_state_priority_send_at", ["state", "priority", "send_at"], unique=False
        )
