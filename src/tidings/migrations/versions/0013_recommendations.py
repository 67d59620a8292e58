"""recommendations: each profile's next product to offer (sku, name, category) and why
(the product or category it is bought with, the rule's confidence and lift)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recommended_sku", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("recommended_product", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("recommended_category", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("recommendation_basis", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("recommendation_because", sa.String(length=200), nullable=True)
        )
        batch_op.add_column(sa.Column("recommendation_confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("recommendation_lift", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for column in (
            "recommendation_lift",
            "recommendation_confidence",
            "recommendation_because",
            "recommendation_basis",
            "recommended_category",
            "recommended_product",
            "recommended_sku",
        ):
            batch_op.drop_column(column)
