"""messages: the send time index holds only messages handed to a provider

The console's dashboard reads a fortnight of sends by day from ix_messages_send_at_state and
counts only messages handed to a provider. A campaign plan writes a million planned and
skipped messages, each of which cost an entry in that index (on PostgreSQL a fifth of the
server's work in writing them, on SQLite about a tenth of the write's CPU) where no query
looks for them; a message enters the index when it is claimed for sending. The condition is
a chain of `<>`, not `NOT IN (...)`: SQLite builds a table of the list for every row written.

It follows 0017, which was written first.

Revision ID: 0016
Revises: 0017
Create Date: 2026-12-02 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As tidings.dispatch.models.HANDED_OVER says it, word for word.
HANDED_OVER = sa.text(
    "state <> 'planned' AND state <> 'queued' AND state <> 'skipped' AND state <> 'cancelled'"
)
COLUMNS = ["send_at", "state", "cost_cents"]


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_send_at_state")
        batch_op.create_index(
            "ix_messages_send_at_state",
            COLUMNS,
            unique=False,
            sqlite_where=HANDED_OVER,
            postgresql_where=HANDED_OVER,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_send_at_state")
        batch_op.create_index("ix_messages_send_at_state", COLUMNS, unique=False)
