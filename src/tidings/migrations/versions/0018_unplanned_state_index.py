"""messages: the state index leaves planned messages out

A campaign plan writes a million planned messages at once, each of which cost an entry in
ix_messages_state (on PostgreSQL about a tenth of the server's work in writing them) where
no query looks for them by state alone: a campaign's planned messages are found through
ix_messages_campaign_id_state. The index serves the dispatcher's and the chores' lookups of
messages in flight or ended (submitting, submitted, failed, skipped, ...). SQLite uses a
partial index only for a query that states its condition, so those queries say
`state <> 'planned'` (tidings.dispatch.models.NOT_PLANNED).

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-02 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As tidings.dispatch.models.NOT_PLANNED says it, word for word.
NOT_PLANNED = sa.text("state <> 'planned'")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_state")
        batch_op.create_index(
            "ix_messages_state",
            ["state"],
            unique=False,
            sqlite_where=NOT_PLANNED,
            postgresql_where=NOT_PLANNED,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_state")
        batch_op.create_index("ix_messages_state", ["state"], unique=False)
