"""Plan a 1,000,000-member campaign and write its messages, on SQLite and on PostgreSQL.

Target (issue 5): two variants, a 10% holdout, frequency caps and send windows, from the
store to one message row per member in the store: at most 10 s on each store. The timed
part is `campaigns.service.plan` end to end: reading the audience (members, stores, profiles,
consent), history and suppressions, the vectorised plan, and the bulk write. Setting up the
base (members, profiles, 300,000 earlier messages for the caps) is not timed. Two figures per
store: cold (a fresh process reads the audience from the store) and warm (a second campaign
while the audience snapshot is in memory, as in `tidings serve`). Variant A carries a coupon
of its own for each planned member and variant B a short link: both are derived while
planning and shown in the text, and issued when the campaign is sent (`campaigns.release`),
which the scenario times too, apart (a figure without a target). BENCH_CAMPAIGN_COUPONS=0
plans without the coupon.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy import Engine, text

from bench.harness import report
from tidings import migrate
from tidings.bulk import bulk_insert
from tidings.campaigns import service
from tidings.campaigns.rollout import release_next_stage
from tidings.campaigns.schemas import CampaignCreate, CouponOffer, VariantCreate
from tidings.db import make_engine, session_scope
from tidings.segments.snapshot import invalidate

MEMBERS = int(os.environ.get("BENCH_CAMPAIGN_MEMBERS", "1000000"))  # smaller for a quick look
COUPONS = os.environ.get("BENCH_CAMPAIGN_COUPONS", "1") != "0"
HISTORY = 300_000  # earlier marketing messages, so caps and cool-downs have work to do
TARGET_SECONDS = 10.0
DATA = Path(__file__).resolve().parent.parent / "data"
POSTGRES_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMA = "bench_campaign_plan"
UTC_TIME = pl.Datetime("us", "UTC")
NOW = datetime.now(UTC).replace(microsecond=0)
ZONES = ["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong"]
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵"]


def _base(members: int, seed: int = 11) -> dict[str, pl.DataFrame]:
    """Members, stores, consent, profiles and earlier messages with plausible spreads."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, members + 1)
    stamp = pl.lit(NOW, dtype=UTC_TIME)
    names = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), members)]
    member_rows = pl.DataFrame(
        {
            "id": ids,
            "code": pl.Series(ids).cast(pl.String),
            "phone": pl.Series(13_900_000_000 + ids).cast(pl.String),
            "name": pl.Series(names) + "小明",
            "gender": np.array(["F", "M"])[rng.integers(0, 2, members)],
            "store_id": rng.integers(1, 51, members),
            "points": rng.integers(0, 20_000, members),
            "timezone": np.array(ZONES)[rng.choice(3, members, p=[0.9, 0.05, 0.05])],
        }
    ).with_columns(
        phone="+86" + pl.col("phone"),
        phone_status=pl.lit("ok"),
        birthday_is_lunar=pl.lit(False),
        created_at=stamp,
        updated_at=stamp,
    )
    stores = pl.DataFrame({"id": np.arange(1, 51)}).with_columns(
        code="S" + pl.col("id").cast(pl.String),
        name="门店" + pl.col("id").cast(pl.String),
        city=pl.lit("上海"),
        created_at=stamp,
    )
    consented = ids[rng.random(members) < 0.85]
    consent = pl.DataFrame({"member_id": consented}).with_columns(
        kind=pl.lit("opt_in"),
        topic=pl.lit("marketing"),
        source=pl.lit("bench"),
        occurred_at=stamp,
        created_at=stamp,
    )
    profiles = pl.DataFrame(
        {
            "member_id": ids,
            "tier": np.array(["bronze", "silver", "gold"])[
                rng.choice(3, members, p=[0.7, 0.2, 0.1])
            ],
            "lifecycle_stage": np.array(["active", "dormant", "lapsed"])[
                rng.integers(0, 3, members)
            ],
            "best_hour": rng.integers(9, 20, members),
            "orders_90d": rng.integers(0, 6, members),
        }
    ).with_columns(
        as_of=pl.lit(date.today()),
        orders_total=pl.col("orders_90d") + 1,
        spend_total_cents=pl.lit(50_000),
        spend_90d_cents=pl.lit(20_000),
        orders_365d=pl.col("orders_90d") + 1,
        spend_365d_cents=pl.lit(40_000),
        churn_risk=pl.lit(False),
        computed_at=stamp,
    )
    ages = pl.lit(pl.Series(rng.integers(3_600, 28 * 86_400, HISTORY)))
    sent_at = NOW - pl.duration(seconds=ages)
    earlier = pl.DataFrame({"member_id": rng.integers(1, members + 1, HISTORY)}).with_columns(
        dedupe_key="bench:" + pl.int_range(pl.len()).cast(pl.String),
        phone=pl.lit("+8613900000000"),
        kind=pl.lit("marketing"),
        offer_type=pl.Series(np.array(["coupon", "points", "gift"])[rng.integers(0, 3, HISTORY)]),
        priority=pl.lit(9),
        text=pl.lit("【tidings】上月活动 拒收请回复R"),
        parts=pl.lit(1),
        cost_cents=pl.lit(5),
        state=pl.lit("delivered"),
        rollout_stage=pl.lit(0),
        send_at=sent_at,
        submitted_at=sent_at,
        provider=pl.lit("simulator"),
        attempts=pl.lit(1),
        created_at=stamp,
        updated_at=stamp,
    )
    return {
        "stores": stores,
        "members": member_rows,
        "consent_events": consent,
        "profiles": profiles,
        "messages": earlier,
    }


def _store(engine: Engine, base: dict[str, pl.DataFrame]) -> None:
    with session_scope(engine) as session:
        for table, frame in base.items():
            bulk_insert(session, table, frame)


def _sqlite_engine() -> Engine:
    path = DATA / f"campaign_plan_{MEMBERS}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    return engine


def _postgres_engine() -> Engine:
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    admin.dispose()
    engine = make_engine(POSTGRES_URL, schema=SCHEMA)
    migrate.upgrade(engine)
    return engine


def _plan(
    engine: Engine, *, name: str, offer_type: str, cold: bool
) -> tuple[int, float, dict, dict[str, float]]:
    spec = CampaignCreate(
        name=name,
        rule="consent == true or consent == false",
        variants=[
            VariantCreate(
                template="{surname}，双十二全场满199减50，{store}等你"
                + ("，券码{coupon}" if COUPONS else ""),
                weight=1,
            ),
            VariantCreate(template="{name|会员}您好，双十二会员专享8折 {link}", weight=1),
        ],
        holdout=0.1,
        offer_type=offer_type,
        schedule="best-hour",
        expires="2d",
        rollout=[1, 10, 100],
        link="https://t.example.cn/1212",
        coupon_offer=(
            CouponOffer(value_cents=1000, min_spend_cents=5000, valid_days=7) if COUPONS else None
        ),
    )
    with session_scope(engine) as session:
        campaign_id = service.create(db_session=session, spec=spec).id
    if cold:
        invalidate(engine)  # read the audience from the store, as a fresh process would
    phases: dict[str, float] = {}
    started, cpu = time.perf_counter(), time.process_time()
    with session_scope(engine) as session:
        summary = service.plan(db_session=session, campaign_id=campaign_id, phases=phases)
        committing = time.perf_counter()
    phases["commit"] = time.perf_counter() - committing
    # This process's CPU seconds (every thread), beside the wall clock: on a busy machine
    # the gap is time spent waiting for a core, the disk or the PostgreSQL server.
    summary["cpu_seconds"] = time.process_time() - cpu
    return campaign_id, time.perf_counter() - started, summary, phases


def _release_every_stage(engine: Engine, campaign_id: int) -> str:
    """Sends the campaign and releases each later stage at once: the coupons and links the
    messages show are issued then. Returns what it took, to print beside the plan."""
    started = time.perf_counter()
    with session_scope(engine) as session:
        queued = service.send(db_session=session, campaign_id=campaign_id)
        campaign = service.get(db_session=session, campaign_id=campaign_id)
        while campaign.rollout_stage < len(campaign.rollout_stages or [100]) - 1:
            queued += release_next_stage(session, campaign, now=NOW)
    seconds = time.perf_counter() - started
    with engine.connect() as connection:
        coupons, links = (
            connection.execute(
                text(f"SELECT COUNT(*) FROM {table} WHERE campaign_id = :id"), {"id": campaign_id}
            ).scalar_one()
            for table in ("coupons", "short_links")
        )
    return (
        f"sending it, every stage at once: {seconds:.2f} s for {queued:,} messages,"
        f" {coupons:,} coupons and {links:,} links issued (no target)"
    )


def _run_on(name: str, engine: Engine, base: dict[str, pl.DataFrame]) -> None:
    _store(engine, base)
    # Cold: a fresh process reads the audience from the store. Warm: `tidings serve` keeps
    # the audience snapshot in memory, so a second campaign reads only history.
    for label, offer, cold in (("cold", "coupon", True), ("warm", "birthday", False)):
        campaign_id, seconds, summary, phases = _plan(
            engine, name=f"双十二 {label}", offer_type=offer, cold=cold
        )
        skipped = ", ".join(f"{reason} {n:,}" for reason, n in summary["skipped"].items())
        other = seconds - sum(phases.values())
        timing = ", ".join(f"{phase} {s:.2f} s" for phase, s in {**phases, "other": other}.items())
        print(
            f"campaign plan on {name} ({label}): audience {summary['audience']:,},"
            f" holdout {summary['holdout']:,}, planned {summary['planned']:,}; skipped {skipped}"
            f"\n  phases: {timing}; this process's CPU {summary['cpu_seconds']:.2f} s",
            flush=True,
        )
        report(
            f"campaign_plan_{name}_{label}_{MEMBERS}",
            seconds,
            "s",
            f"<= {TARGET_SECONDS:.0f} s",
            met=seconds <= TARGET_SECONDS,
        )
        print(f"  {_release_every_stage(engine, campaign_id)}", flush=True)
    engine.dispose()


def run() -> None:
    base = _base(MEMBERS)
    _run_on("sqlite", _sqlite_engine(), base)
    _run_on("postgresql", _postgres_engine(), base)
