"""Credit 1,000,000 orders against a 1,000,000-message campaign, on SQLite and PostgreSQL.

Target (issue 8): a campaign of a million messages with a million orders is attributed in
seconds: at most 10 s end to end (`tracking.credits.attribute_orders`: reading the orders,
deliveries, people's clicks and coupon redemptions, crediting them with `join_asof`, and
writing the credits), and the crediting itself (`tracking.attribution.credit_orders` on frames
in memory) at most 3 s. A second run over the same orders (nothing new to credit) is timed too.
Setting up the store (members, messages, links, clicks, coupons, orders) is not timed.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy import Engine, text

from bench.harness import report
from tidings import migrate
from tidings.bulk import bulk_insert
from tidings.config import Settings
from tidings.db import make_engine, session_scope
from tidings.tracking.attribution import Windows, credit_orders
from tidings.tracking.credits import attribute_orders

MESSAGES = int(os.environ.get("BENCH_ATTRIBUTION_MESSAGES", "1000000"))
ORDERS = MESSAGES  # one order per message on average: some members order often, some never
CLICK_SHARE = 0.08  # of messages clicked by a person
ROBOT_SHARE = 0.25  # of messages fetched by a link preview
REDEEM_SHARE = 0.03  # of messages whose coupon is redeemed
TARGET_SECONDS = 10.0
TARGET_CREDIT_SECONDS = 3.0
DATA = Path(__file__).resolve().parent.parent / "data"
POSTGRES_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMA = "bench_attribution"
UTC_TIME = pl.Datetime("us", "UTC")
NOW = datetime.now(UTC).replace(microsecond=0)
SENT = NOW - timedelta(days=10)


def _seconds(rng: np.random.Generator, size: int, low: float, high: float) -> pl.Series:
    return pl.Series(rng.uniform(low, high, size).astype(np.int64))


def _tables(seed: int = 8) -> dict[str, pl.DataFrame]:
    """The rows of every table involved, in the order they are written."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, MESSAGES + 1)
    stamp = pl.lit(NOW, dtype=UTC_TIME)
    sent = pl.lit(SENT, dtype=UTC_TIME)
    members = pl.DataFrame({"id": ids, "phone": pl.Series(13_900_000_000 + ids).cast(pl.String)})
    keys = pl.select(pl.format("campaign:1:member:{}", pl.Series(ids))).to_series()
    messages = pl.DataFrame({"id": ids, "member_id": ids, "dedupe_key": keys}).with_columns(
        campaign_id=pl.lit(1),
        variant_id=pl.lit(1) + pl.Series(ids % 2),
        phone=members["phone"],
        text=pl.lit("x"),
        kind=pl.lit("marketing"),
        priority=pl.lit(9),
        parts=pl.lit(1),
        cost_cents=pl.lit(5),
        rollout_stage=pl.lit(0),
        provider=pl.lit("simulator"),
        attempts=pl.lit(1),
        state=pl.lit("delivered"),
        send_at=sent,
        submitted_at=sent,
        delivered_at=sent + pl.duration(seconds=_seconds(rng, MESSAGES, 1, 60)),
        created_at=stamp,
        updated_at=stamp,
    )
    links = pl.DataFrame({"id": ids, "dedupe_key": keys}).with_columns(
        code=pl.Series(ids).cast(pl.String), target_url=pl.lit("https://shop.example.cn/")
    )
    people = rng.random(MESSAGES) < CLICK_SHARE
    robots = rng.random(MESSAGES) < ROBOT_SHARE
    clicks = pl.concat(
        [
            pl.DataFrame({"link_id": ids[people], "is_robot": False}),
            pl.DataFrame({"link_id": ids[robots], "is_robot": True}),
        ]
    )
    clicks = clicks.with_columns(
        clicked_at=sent + pl.duration(seconds=_seconds(rng, clicks.height, 60, 86_400))
    )
    buyers = rng.integers(1, MESSAGES + 1, ORDERS)
    orders = pl.DataFrame({"id": np.arange(1, ORDERS + 1), "member_id": buyers}).with_columns(
        external_id=pl.format("POS{}", "id"),
        ordered_at=sent + pl.duration(seconds=_seconds(rng, ORDERS, -86_400, 9 * 86_400)),
        amount_cents=pl.Series(rng.integers(1_000, 50_000, ORDERS)),
        discount_cents=pl.lit(0),
        created_at=stamp,
    )
    redeemed = orders.filter(pl.Series(rng.random(ORDERS) < REDEEM_SHARE)).unique("member_id")
    coupons = redeemed.select(
        pl.col("member_id"),
        pl.format("CP{}", "id").alias("code"),
        pl.lit(1).alias("campaign_id"),
        pl.lit("campaign").alias("source"),
        pl.lit("value").alias("kind"),
        pl.lit(500).alias("value_cents"),
        pl.lit(0).alias("discount_percent"),
        pl.lit(0).alias("min_spend_cents"),
        sent.alias("valid_from"),
        pl.lit("redeemed").alias("status"),
        pl.col("external_id").alias("redeemed_order_ref"),
        stamp.alias("created_at"),
    )
    return {
        "members": members.with_columns(
            phone_status=pl.lit("ok"),
            birthday_is_lunar=pl.lit(False),
            points=pl.lit(0),
            created_at=stamp,
            updated_at=stamp,
        ),
        "messages": messages,
        "short_links": links.with_columns(created_at=stamp),
        "clicks": clicks,
        "orders": orders,
        "coupons": coupons,
    }


def _setup(engine: Engine, tables: dict[str, pl.DataFrame]) -> None:
    with session_scope(engine) as session:
        session.execute(
            text(
                "INSERT INTO campaigns (id, name, kind, status, holdout_share, schedule_kind,"
                " provider, rollout_stages, rollout_stage, created_at, updated_at) VALUES"
                " (1, 'bench', 'marketing', 'completed', 0, 'now', 'simulator', '[100]', 0,"
                " :now, :now)"
            ),
            {"now": NOW},
        )
        session.execute(
            text(
                "INSERT INTO variants (id, campaign_id, name, template, weight, is_control,"
                " created_at) VALUES (1, 1, 'A', 'x', 1, true, :now), (2, 1, 'B', 'x', 1, false,"
                " :now)"
            ),
            {"now": NOW},
        )
        for table, frame in tables.items():
            bulk_insert(session, table, frame)
    if engine.dialect.name == "postgresql":
        # As autovacuum would soon after a bulk load: without statistics PostgreSQL joins the
        # redeemed coupons to the messages row by row (12 s instead of 0.1 s at 200,000).
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def _in_memory(tables: dict[str, pl.DataFrame]) -> None:
    """Times the crediting alone, on frames already in memory."""
    messages = (
        tables["messages"]
        .select(pl.col("id").alias("message_id"), "campaign_id", "variant_id", "member_id")
        .with_columns(trigger_id=pl.lit(None, dtype=pl.Int64))
    )
    orders = tables["orders"].select(
        pl.col("id").alias("order_id"), "member_id", "ordered_at", "amount_cents"
    )
    deliveries = messages.join(
        tables["messages"].select(pl.col("id").alias("message_id"), "delivered_at"),
        on="message_id",
    ).rename({"delivered_at": "touched_at"})
    clicks = (
        tables["clicks"]
        .filter(~pl.col("is_robot"))
        .join(messages, left_on="link_id", right_on="message_id")
        .rename({"link_id": "message_id", "clicked_at": "touched_at"})
    )
    redemptions = (
        tables["coupons"]
        .join(
            orders.with_columns(tables["orders"]["external_id"]),
            left_on="redeemed_order_ref",
            right_on="external_id",
        )
        .join(messages, on="member_id")
        .with_columns(pl.lit(SENT, dtype=UTC_TIME).alias("touched_at"))
    )
    windows = Windows.of_days(click_days=7, view_days=3)
    started = time.perf_counter()
    credits = credit_orders(
        orders, redemptions=redemptions, clicks=clicks, deliveries=deliveries, windows=windows
    )
    seconds = time.perf_counter() - started
    report(
        f"attribution credit_orders {MESSAGES:,} messages, {ORDERS:,} orders"
        f" ({credits.height:,} credited)",
        seconds,
        "s",
        f"<= {TARGET_CREDIT_SECONDS:.0f} s",
        met=seconds <= TARGET_CREDIT_SECONDS,
    )


def _store_run(engine: Engine, label: str) -> None:
    settings = Settings()
    for attempt in ("first", "again"):
        started = time.perf_counter()
        with session_scope(engine) as session:
            result = attribute_orders(
                db_session=session, since=SENT - timedelta(days=30), now=NOW, settings=settings
            )
        seconds = time.perf_counter() - started
        report(
            f"attribution {label} {attempt} run ({result.credited:,} credited)",
            seconds,
            "s",
            f"<= {TARGET_SECONDS:.0f} s",
            met=seconds <= TARGET_SECONDS,
        )


def run() -> None:
    tables = _tables()
    _in_memory(tables)
    DATA.mkdir(exist_ok=True)
    path = DATA / "attribution.db"
    path.unlink(missing_ok=True)
    sqlite = make_engine(f"sqlite:///{path}")
    migrate.upgrade(sqlite)
    _setup(sqlite, tables)
    _store_run(sqlite, "SQLite")
    sqlite.dispose()
    path.unlink(missing_ok=True)
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    postgres = make_engine(POSTGRES_URL, schema=SCHEMA)
    try:
        migrate.upgrade(postgres)
        _setup(postgres, tables)
        _store_run(postgres, "PostgreSQL")
    finally:
        postgres.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        admin.dispose()
