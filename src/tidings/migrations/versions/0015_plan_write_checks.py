"""messages, short links and coupons: no per-row member and campaign checks; receipts index
only sent ones

Planning a campaign writes a million messages, and as many short links and coupons, with
the campaign's id and member ids the planner has just read from the store. A foreign key on
those ids made the store look up (and on PostgreSQL lock) the member and campaign rows once
per written row, most of the time of writing a plan; the variant a message shows is likewise
one of its own campaign's. Members are never deleted (erasure clears their data and keeps
the row), nor are campaigns (they are cancelled), so the checks guarded nothing the planner
does not. The receipts index holds only messages a provider took: planned and skipped ones,
which have no provider id, stay out of it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 10:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TAKEN = sa.text("provider_message_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("fk_messages_campaign_id_campaigns", type_="foreignkey")
        batch_op.drop_constraint("fk_messages_member_id_members", type_="foreignkey")
        batch_op.drop_constraint("fk_messages_variant_id_variants", type_="foreignkey")
        batch_op.drop_index("ix_messages_provider_provider_message_id")
        batch_op.create_index(
            "ix_messages_provider_provider_message_id",
            ["provider", "provider_message_id"],
            unique=False,
            sqlite_where=TAKEN,
            postgresql_where=TAKEN,
        )
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.drop_constraint("fk_short_links_campaign_id_campaigns", type_="foreignkey")
        batch_op.drop_constraint("fk_short_links_member_id_members", type_="foreignkey")
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_constraint("fk_coupons_campaign_id_campaigns", type_="foreignkey")
        batch_op.drop_constraint("fk_coupons_member_id_members", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_coupons_member_id_members", "members", ["member_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            "fk_coupons_campaign_id_campaigns",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_short_links_campaign_id_campaigns",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_short_links_member_id_members",
            "members",
            ["member_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_provider_provider_message_id")
        batch_op.create_index(
            "ix_messages_provider_provider_message_id",
            ["provider", "provider_message_id"],
            unique=False,
        )
        batch_op.create_foreign_key(
            "fk_messages_variant_id_variants",
            "variants",
            ["variant_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            "fk_messages_member_id_members", "members", ["member_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            "fk_messages_campaign_id_campaigns",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="CASCADE",
        )
