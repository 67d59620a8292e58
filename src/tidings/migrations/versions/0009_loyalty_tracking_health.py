"""loyalty, tracking and report health: points lots, coupons, short links, clicks,
attributions of orders to messages, and health breaches

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:09:31.020801
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "health_breaches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_key", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("detected_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("posted_at", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_breaches")),
        sa.UniqueConstraint(
            "scope", "scope_key", "day", "metric", name=op.f("uq_health_breaches_scope")
        ),
    )
    op.create_table(
        "coupons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("trigger_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("value", "discount", name="couponkind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("value_cents", sa.Integer(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("min_spend_cents", sa.Integer(), nullable=False),
        sa.Column("valid_from", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "issued", "redeemed", "void", name="couponstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("redeemed_at", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_order_ref", sa.String(length=100), nullable=True),
        sa.Column("redeemed_amount_cents", sa.Integer(), nullable=True),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_coupons_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_coupons_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("code", name=op.f("uq_coupons_code")),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coupons_campaign_id_member_id", ["campaign_id", "member_id"], unique=False
        )
        batch_op.create_index("ix_coupons_member_id_status", ["member_id", "status"], unique=False)

    op.create_table(
        "short_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=100), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("trigger_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("target_url", sa.Text(), nullable=False),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_short_links_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_short_links_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_short_links")),
        sa.UniqueConstraint("code", name=op.f("uq_short_links_code")),
    )
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_short_links_campaign_id_member_id", ["campaign_id", "member_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_short_links_dedupe_key"), ["dedupe_key"], unique=False)

    op.create_table(
        "attributions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("variant_id", sa.Integer(), nullable=True),
        sa.Column("trigger_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "coupon", "click", "view", name="attributionkind", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("revenue_cents", sa.Integer(), nullable=False),
        sa.Column("ordered_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_attributions_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_attributions_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attributions")),
        sa.UniqueConstraint("order_id", name=op.f("uq_attributions_order_id")),
    )
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.create_index("ix_attributions_campaign_id", ["campaign_id"], unique=False)
        batch_op.create_index("ix_attributions_message_id", ["message_id"], unique=False)

    op.create_table(
        "clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("clicked_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("is_robot", sa.Boolean(), nullable=False),
        sa.Column("robot_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["short_links.id"],
            name=op.f("fk_clicks_link_id_short_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clicks")),
    )
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clicks_link_id_clicked_at", ["link_id", "clicked_at"], unique=False
        )

    op.create_table(
        "points_lots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "opening",
                "accrual",
                "redemption",
                "expiry",
                "adjustment",
                name="lotkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("coupon_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tidings.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", tidings.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["coupon_id"],
            ["coupons.id"],
            name=op.f("fk_points_lots_coupon_id_coupons"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_points_lots_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_points_lots_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_lots")),
        sa.UniqueConstraint("kind", "order_id", name=op.f("uq_points_lots_kind")),
    )
    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_points_lots_member_id_expires_at", ["member_id", "expires_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.drop_index("ix_points_lots_member_id_expires_at")

    op.drop_table("points_lots")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_clicks_link_id_clicked_at")

    op.drop_table("clicks")
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.drop_index("ix_attributions_message_id")
        batch_op.drop_index("ix_attributions_campaign_id")

    op.drop_table("attributions")
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_short_links_dedupe_key"))
        batch_op.drop_index("ix_short_links_campaign_id_member_id")

    op.drop_table("short_links")
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index("ix_coupons_member_id_status")
        batch_op.drop_index("ix_coupons_campaign_id_member_id")

    op.drop_table("coupons")
    op.drop_table("health_breaches")
