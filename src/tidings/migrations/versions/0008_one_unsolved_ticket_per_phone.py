"""tickets: at most one unsolved ticket per phone

Two callbacks for one phone handled at the same time each found no unsolved ticket and
opened one; a partial unique index makes the second join the first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 01:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSOLVED = sa.text("status <> 'solved'")


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "uq_tickets_unsolved_phone",
            ["phone"],
            unique=True,
            sqlite_where=UNSOLVED,
            postgresql_where=UNSOLVED,
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("uq_tickets_unsolved_phone")
