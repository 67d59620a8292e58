"""in-place changes of orders and order lines are marked, for the columnar copies

A profile refresh keeps the order lines and orders it reads as Arrow files beside a SQLite
store and reads from the store only what they lack (`tidings.scancopies`). Rows are
appended with growing ids; a row updated or deleted in place is marked here by a trigger, so
that the copy reads it again.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 19:00:00.000000
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MARKED_TABLES = ("orders", "order_items")
# A row's change (its old id, and its new one if the id itself changed) lowers the table's
# first changed id; each change counts.
MARK = """
CREATE TRIGGER {table}_{verb}_marked AFTER {event} ON {table}
BEGIN
    UPDATE changed_rows
    SET changes = changes + 1,
        first_changed_id = MIN(COALESCE(first_changed_id, {lowest}), {lowest})
    WHERE table_name = '{table}';
END
"""
EVENTS = {"updated": ("UPDATE", "MIN(OLD.id, NEW.id)"), "deleted": ("DELETE", "OLD.id")}


def upgrade() -> None:
    changed_rows = op.create_table(
        "changed_rows",
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("first_changed_id", sa.Integer(), nullable=True),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("store_key", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_changed_rows")),
    )
    # A copy made of another store (one put in this one's place) is told by its key.
    key = secrets.token_hex(8)
    op.bulk_insert(
        changed_rows,
        [{"table_name": name, "changes": 0, "store_key": key} for name in MARKED_TABLES],
    )
    if op.get_bind().dialect.name != "sqlite":
        return  # the copies are kept for SQLite files only
    for table in MARKED_TABLES:
        for verb, (event, lowest) in EVENTS.items():
            op.execute(MARK.format(table=table, verb=verb, event=event, lowest=lowest))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in MARKED_TABLES:
            for verb in EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{verb}_marked")
    op.drop_table("changed_rows")
