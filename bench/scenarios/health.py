"""The worker's health check over a busy day of sending.

Target (issue 8): one check of the last day (rates per campaign, provider and day, with the
replies, opt-outs and complaints laid to their messages) over 1,000,000 messages takes at
most 10 seconds on SQLite and on PostgreSQL, a small share of the 5 minutes between checks.
Writing the day's messages, replies, opt-outs and complaints is not timed.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy import Engine, text

from bench.harness import report
from tidings import migrate
from tidings.bulk import bulk_insert
from tidings.campaigns.sources import phone_hashes
from tidings.config import Settings
from tidings.db import make_engine, session_scope
from tidings.reports.health import health_rows

MESSAGES = int(os.environ.get("BENCH_HEALTH_MESSAGES", "1000000"))
CAMPAIGNS = 20
PROVIDERS = ("aliyun", "tencent", "smpp")
TARGET = 10.0  # seconds per check
COMPLAINED = 0.001  # share of messages complained about
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
UTC_TIME = pl.Datetime("us", "UTC")
POSTGRES_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _messages(rng: np.random.Generator) -> pl.DataFrame:
    ids = np.arange(1, MESSAGES + 1)
    sent = NOW - timedelta(hours=20)
    offsets = rng.integers(0, 18 * 3600, MESSAGES)
    states = rng.choice(
        ["delivered", "failed", "expired", "submitted"], MESSAGES, p=[0.96, 0.02, 0.01, 0.01]
    )
    return pl.DataFrame(
        {
            "id": ids,
            "dedupe_key": [f"bench-{i}" for i in ids],
            "campaign_id": rng.integers(1, CAMPAIGNS + 1, MESSAGES),
            "phone": [f"+86139{i:08d}" for i in ids],
            "text": ["【品牌】周末特惠 拒收请回复R"] * MESSAGES,
            "state": states,
            "attempts": np.ones(MESSAGES, dtype=np.int64),
            "provider": rng.choice(PROVIDERS, MESSAGES),
        }
    ).with_columns(
        submitted_at=pl.lit(sent, dtype=UTC_TIME) + pl.duration(seconds=pl.Series(offsets)),
        kind=pl.lit("marketing"),
        priority=pl.lit(9),
        parts=pl.lit(1),
        cost_cents=pl.lit(5),
        rollout_stage=pl.lit(0),
        send_at=pl.lit(sent, dtype=UTC_TIME),
        created_at=pl.lit(sent, dtype=UTC_TIME),
        updated_at=pl.lit(NOW, dtype=UTC_TIME),
    )


def _fill(engine: Engine) -> None:
    rng = np.random.default_rng(8)
    messages = _messages(rng)
    answered = messages.sample(fraction=0.05, seed=1)
    replies = answered.select(
        provider="provider",
        provider_message_id=pl.format("mo-{}", "id"),
        phone="phone",
        text=pl.lit("好的"),
        received_at=pl.col("submitted_at") + pl.duration(minutes=30),
        in_reply_to_message_id="id",
        intent=pl.when(pl.int_range(pl.len()) % 20 == 0)
        .then(pl.lit("opt_out"))
        .otherwise(pl.lit("thanks")),
        created_at=pl.lit(NOW, dtype=UTC_TIME),
    )
    # Complaints come as replies that the inbound handling takes for complaints: each one
    # suppresses the phone (a hotline complaint without a reply is the rare, slow case).
    complained = messages.sample(fraction=COMPLAINED, seed=2)
    complaint_replies = complained.select(
        provider="provider",
        provider_message_id=pl.format("complaint-{}", "id"),
        phone="phone",
        text=pl.lit("骚扰短信，我要投诉"),
        received_at=pl.col("submitted_at") + pl.duration(hours=1),
        in_reply_to_message_id="id",
        intent=pl.lit("complaint"),
        created_at=pl.lit(NOW, dtype=UTC_TIME),
    )
    complaints = pl.DataFrame({"phone_hash": phone_hashes(complained["phone"])}).with_columns(
        reason=pl.lit("complained"),
        source=pl.lit("bench"),
        created_at=complained["submitted_at"] + pl.duration(hours=1),
    )
    campaigns = pl.DataFrame({"id": list(range(1, CAMPAIGNS + 1))}).with_columns(
        name=pl.format("campaign {}", "id"),
        kind=pl.lit("marketing"),
        status=pl.lit("running"),
        holdout_share=pl.lit(0.0),
        schedule_kind=pl.lit("now"),
        provider=pl.lit("aliyun"),
        rollout_stages=pl.lit("[100]"),
        rollout_stage=pl.lit(0),
        created_at=pl.lit(NOW, dtype=UTC_TIME),
        updated_at=pl.lit(NOW, dtype=UTC_TIME),
    )
    with session_scope(engine) as session:
        bulk_insert(session, "campaigns", campaigns)
        bulk_insert(session, "messages", messages)
        bulk_insert(session, "replies", pl.concat([replies, complaint_replies]))
        bulk_insert(session, "suppressions", complaints)


def _check(engine: Engine, store: str) -> None:
    _fill(engine)
    started = time.perf_counter()
    with session_scope(engine) as session:
        rows = health_rows(db_session=session, days=1, now=NOW, settings=Settings())
    seconds = time.perf_counter() - started
    sent = sum(row["sent"] for row in rows if row["scope"] == "day")
    assert sent == MESSAGES, f"the check counted {sent:,} of {MESSAGES:,} messages"
    complained = sum(row["complained"] for row in rows if row["scope"] == "day")
    assert complained == round(MESSAGES * COMPLAINED), f"{complained:,} complaints counted"
    report(
        f"health check of {MESSAGES:,} messages ({store})",
        seconds,
        "s",
        f"<= {TARGET:.0f} s",
        met=seconds <= TARGET,
    )


def run() -> None:
    """Measures one health check on SQLite and PostgreSQL."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'health.db'}")
        migrate.upgrade(engine)
        _check(engine, "sqlite")
        engine.dispose()
    schema = f"bench_health_{os.getpid()}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(POSTGRES_URL, schema=schema)
    try:
        migrate.upgrade(engine)
        _check(engine, "postgresql")
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
