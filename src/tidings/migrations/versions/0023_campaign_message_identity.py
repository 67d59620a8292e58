"""a campaign's message is told by its member, campaign and step, not by a text key

Planning a campaign writes a million messages. Each carried a text key made of its campaign,
step and member ("campaign:7:member:42"), held unique by an index of its own, and each went
into an index of member and time as well. Both indexes took an entry per message at a
random place, most of the time of writing a plan. One unique index of member, campaign and
step now does both: it keeps a member from getting a campaign's step twice, and it finds a
member's messages. Messages of triggers, replies and the messages API keep their text key
(their campaign is empty, so the new index never holds two of theirs apart).

A short link belongs to its campaign's first message to its member, found by the same
three; the link's copy of the message's key goes.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column("dedupe_key", existing_type=sa.String(length=100), nullable=True)
        batch_op.drop_index("ix_messages_member_id_created_at")
    op.execute("UPDATE messages SET dedupe_key = NULL WHERE campaign_id IS NOT NULL")
    op.create_index(
        "uq_messages_member_id_campaign_id_step",
        "messages",
        ["member_id", "campaign_id", "step"],
        unique=True,
    )
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.drop_index("ix_short_links_dedupe_key")
        batch_op.drop_column("dedupe_key")


def downgrade() -> None:
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_short_links_dedupe_key", ["dedupe_key"], unique=False)
    op.execute(
        "UPDATE short_links SET dedupe_key = 'campaign:' || campaign_id || ':member:' || member_id"
    )
    op.execute(
        "UPDATE messages SET dedupe_key = 'campaign:' || campaign_id || ':'"
        " || CASE WHEN step = 0 THEN '' ELSE 'step:' || step || ':' END"
        " || 'member:' || member_id WHERE campaign_id IS NOT NULL"
    )
    op.drop_index("uq_messages_member_id_campaign_id_step", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_member_id_created_at", ["member_id", "created_at"], unique=False
        )
        batch_op.alter_column("dedupe_key", existing_type=sa.String(length=100), nullable=False)
