"""messages: only a message with a key of its own takes an entry in the key's unique index

A campaign's messages carry no key (member, campaign and step tell them apart, 0023), yet
each still took an entry for its empty key in the key's unique index: a million entries for
a million-member plan, about a sixth of SQLite's work in writing its messages and a tenth of
PostgreSQL's. The index now holds only keyed messages (triggers', replies', the messages
API's), which it keeps unique as before. An upsert on the key says the index's condition,
word for word (tidings.dispatch.models.KEYED).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As tidings.dispatch.models.KEYED says it, word for word.
KEYED = sa.text("dedupe_key IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_dedupe_key", type_="unique")
        batch_op.create_index(
            "uq_messages_dedupe_key",
            ["dedupe_key"],
            unique=True,
            sqlite_where=KEYED,
            postgresql_where=KEYED,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("uq_messages_dedupe_key")
        batch_op.create_unique_constraint("uq_messages_dedupe_key", ["dedupe_key"])
