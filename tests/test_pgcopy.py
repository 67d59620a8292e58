"""Bulk writes come back as written, whichever COPY format PostgreSQL was given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy import Engine, select

from tidings.bulk import bulk_insert
from tidings.db import session_scope
from tidings.dispatch.models import Message
from tidings.pgcopy import TIMESTAMPTZ, encodable

SENT = datetime(2026, 12, 2, 8, 30, 15, 123456, tzinfo=UTC)


def _messages() -> pl.DataFrame:
    """Messages with the values a text format gets wrong most easily: nulls, empty and
    non-ASCII text, times before 2000 (PostgreSQL's epoch) and in another zone."""
    return pl.DataFrame(
        {
            "dedupe_key": ["a", "b", "c"],
            "member_id": [7, None, 2_000_000_000],
            "phone": ["+8613900000001", "", "+8613900000003"],
            "text": ["【tidings】王先生，双十二 8折 ü", "", "x" * 500],
            "skip_reason": [None, "holdout", None],
            "state": ["planned", "skipped", "planned"],
            "send_at": [SENT, SENT - timedelta(days=10_000), SENT],
            "offer_type": [None, None, None],
        },
        schema_overrides={"send_at": pl.Datetime("us", "UTC"), "offer_type": pl.Null},
    ).with_columns(
        pl.col("send_at").dt.convert_time_zone("Asia/Shanghai"),
        campaign_id=pl.lit(3),
        kind=pl.lit("marketing"),
        priority=pl.lit(9),
        provider=pl.lit("simulator"),
        attempts=pl.lit(0),
        parts=pl.lit(1),
        cost_cents=pl.lit(5),
        rollout_stage=pl.lit(0),
        created_at=pl.lit(SENT, dtype=pl.Datetime("us", "UTC")),
        updated_at=pl.lit(SENT, dtype=pl.Datetime("us", "UTC")),
    )


def test_bulk_written_messages_read_back_as_written(engine: Engine) -> None:
    frame = _messages()
    with session_scope(engine) as db_session:
        assert bulk_insert(db_session, "messages", frame) == 3
    m = Message
    with session_scope(engine) as db_session:
        rows = db_session.execute(
            select(
                m.member_id,
                m.phone,
                m.text,
                m.skip_reason,
                m.state,
                m.offer_type,
                m.campaign_id,
                m.priority,
                m.send_at,
            ).order_by(m.dedupe_key)
        ).all()
    sent = [moment.astimezone(UTC) for moment in frame["send_at"].to_list()]
    as_stored = [tuple(row) for row in rows]
    assert as_stored == [
        (
            7,
            "+8613900000001",
            "【tidings】王先生，双十二 8折 ü",
            None,
            "planned",
            None,
            3,
            9,
            sent[0],
        ),
        (None, "", "", "holdout", "skipped", None, 3, 9, sent[1]),
        (2_000_000_000, "+8613900000003", "x" * 500, None, "planned", None, 3, 9, sent[2]),
    ]


def test_only_columns_of_known_types_go_in_binary() -> None:
    times = pl.DataFrame({"at": ["2026-12-02 08:30:15"]})
    assert not encodable(times, {"at": TIMESTAMPTZ})  # text for a time: CSV parses it
    assert not encodable(pl.DataFrame({"price": [1.5]}), {"price": "double precision"})
    assert encodable(
        _messages().select("send_at", "member_id"),
        {
            "send_at": TIMESTAMPTZ,
            "member_id": "integer",
        },
    )
