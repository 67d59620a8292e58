"""Writing what a firing pass decided: its messages (queued or skipped) and its firings, each
inserted unless its key is there already, so a pass run twice writes once."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore, execute_many
from tidings.db import is_sqlite
from tidings.dispatch.models import KEYED

UTC_TIME = pl.Datetime("us", "UTC")
MESSAGE_COLUMNS = (
    "dedupe_key",
    "trigger_id",
    "member_id",
    "phone",
    "timezone",
    "kind",
    "offer_type",
    "priority",
    "text",
    "parts",
    "cost_cents",
    "state",
    "skip_reason",
    "rollout_stage",
    "send_at",
    "expires_at",
    "provider",
    "attempts",
    "final_at",
    "created_at",
    "updated_at",
)
TIME_TYPE = "TIMESTAMP WITH TIME ZONE"
# SQL types of the staged columns (PostgreSQL only).
COLUMN_TYPES = {
    **dict.fromkeys(
        ("trigger_id", "member_id", "priority", "parts", "cost_cents", "rollout_stage", "attempts"),
        "BIGINT",
    ),
    **dict.fromkeys(
        ("send_at", "expires_at", "final_at", "created_at", "updated_at", "event_at", "fired_at"),
        TIME_TYPE,
    ),
    **dict.fromkeys(
        (
            "dedupe_key",
            "phone",
            "timezone",
            "kind",
            "offer_type",
            "state",
            "skip_reason",
            "provider",
            "key",
            "outcome",
        ),
        "VARCHAR(100)",
    ),
    "text": "TEXT",
}


def write_firings(db_session: Session, rows: pl.DataFrame, *, now: datetime) -> None:
    """Inserts the messages and their firings, ignoring any already there."""
    firings = rows.select(
        "trigger_id",
        "member_id",
        "key",
        "event_at",
        fired_at=pl.lit(now, dtype=UTC_TIME),
        dedupe_key="dedupe_key",
        outcome="state",
        skip_reason="skip_reason",
    )
    keyed = f"(dedupe_key) WHERE {KEYED}"
    _insert_new(db_session, "messages", rows.select(MESSAGE_COLUMNS), conflict=keyed)
    _insert_new(db_session, "trigger_firings", firings, conflict="(trigger_id, member_id, key)")


def _insert_new(db_session: Session, table: str, frame: pl.DataFrame, *, conflict: str) -> None:
    """Inserts rows, skipping those whose key exists: `conflict` is the unique key in brackets,
    then the condition of its index if partial. PostgreSQL copies the rows into a temporary
    table first (COPY is far quicker than a statement per row); SQLite, whose executemany is
    quick, takes them directly."""
    names = ", ".join(frame.columns)
    if is_sqlite(db_session):
        markers = ", ".join("?" for _ in frame.columns)
        sql = f"INSERT INTO {table} ({names}) VALUES ({markers}) ON CONFLICT {conflict} DO NOTHING"
        execute_many(db_session, sql, frame)
        return
    store = BulkStore(db_session)
    staged = f"firing_{table}"
    store.create_temp(staged, {name: COLUMN_TYPES[name] for name in frame.columns})
    store.ingest(staged, frame)
    store.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged}"
        f" ON CONFLICT {conflict} DO NOTHING"
    )
