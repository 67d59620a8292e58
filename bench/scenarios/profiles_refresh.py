"""Bench: profile refresh for 1,000,000 members and 10,000,000 order lines on SQLite.

Target (issue 3): at most 20 s end to end (read, compute, write back) and at most 4 GiB
peak memory. The store is generated once with numpy and written through sqlite3 into
bench/data/ (git-ignored); the refresh runs in a child process so that its peak memory
(ru_maxrss of the child) is its own. The refresh starts processes of its own (readers of
the big tables): the figure reported is the refresh's own peak plus each of its processes'
peak as if all had been reached at once (an upper bound), and the peak of the sum sampled
every 20 ms over the whole process tree is printed beside it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from bench.harness import report

MEMBERS = 1_000_000
LINES = 10_000_000
LINES_PER_ORDER = 3.0  # on average
STORES = 200
PRODUCTS = 2_000
CATEGORIES = [
    "水果",
    "热带水果",
    "蔬菜",
    "生鲜",
    "乳品",
    "母婴",
    "个护",
    "美妆",
    "酒水",
    "零食",
    "粮油",
    "日用",
    "宠物",
    "数码",
    "服饰",
    "烘焙",
    "冷冻",
    "饮料",
    "茶叶",
    "家居",
]
AS_OF = date(2025, 6, 30)
HISTORY_DAYS = 730
TARGET_SECONDS = 20.0
TARGET_GIB = 4.0
DATA = Path(__file__).resolve().parents[1] / "data"
STORE_FILE = DATA / f"profiles_refresh_{MEMBERS}_{LINES}.db"
TIME_TEXT = "%Y-%m-%d %H:%M:%S.%6f"


def _ingest(path: Path, table: str, frame: pl.DataFrame) -> None:
    columns = ", ".join(frame.columns)
    markers = ", ".join("?" for _ in frame.columns)
    # Closed here (sqlite3's `with` only commits): the last close moves the WAL into the
    # file before generate() renames it, and no stale WAL is left beside the old name.
    with closing(sqlite3.connect(path)) as connection, connection:
        for start in range(0, frame.height, 1_000_000):
            connection.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({markers})",
                frame.slice(start, 1_000_000).iter_rows(),
            )


def generate(path: Path) -> None:
    """Writes a migrated SQLite store with the members, stores, products, orders and lines."""
    from tidings import migrate
    from tidings.db import make_engine

    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    rng = np.random.default_rng(3)
    now = datetime(2025, 7, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    _ingest(
        path,
        "stores",
        pl.DataFrame(
            {
                "id": np.arange(1, STORES + 1),
                "code": [f"S{i:04d}" for i in range(1, STORES + 1)],
                "name": [f"门店{i}" for i in range(1, STORES + 1)],
                "created_at": now,
            }
        ),
    )
    category_of = rng.integers(0, len(CATEGORIES), PRODUCTS)
    packs = pl.Series(rng.choice([7, 14, 30, 60], PRODUCTS)).set(
        pl.Series(rng.random(PRODUCTS) >= 0.3), None
    )
    _ingest(
        path,
        "products",
        pl.DataFrame(
            {
                "sku": [f"P{i:05d}" for i in range(PRODUCTS)],
                "name": [f"商品{i}" for i in range(PRODUCTS)],
                "category": np.array(CATEGORIES)[category_of],
                "pack_size_days": packs,
            },
            schema_overrides={"pack_size_days": pl.Int64},
        ),
    )
    ids = np.arange(1, MEMBERS + 1)
    home = rng.integers(1, STORES + 1, MEMBERS)
    _ingest(
        path,
        "members",
        pl.DataFrame(
            {
                "id": ids,
                "code": pl.Series(ids).cast(pl.String),
                "phone": [f"+86138{i:08d}" for i in ids],
                "phone_status": "ok",
                "store_id": home,
                "birthday_is_lunar": 0,
                "points": 0,
                "created_at": now,
                "updated_at": now,
            }
        ),
    )
    orders = int(LINES / LINES_PER_ORDER)
    # Some members buy far more than others; a fifth never buy.
    weight = rng.gamma(0.6, 1.0, MEMBERS) * (rng.random(MEMBERS) > 0.2)
    buyer = rng.choice(ids, orders, p=weight / weight.sum())
    seconds = rng.integers(0, HISTORY_DAYS * 86_400, orders)
    start = datetime(2023, 7, 1, tzinfo=UTC).timestamp()
    ordered_at = pl.from_epoch(pl.Series(start + seconds, dtype=pl.Int64), time_unit="s")
    line_count = np.maximum(1, rng.poisson(LINES_PER_ORDER - 1, orders) + 1)
    line_order = np.repeat(np.arange(1, orders + 1), line_count)[:LINES]
    line_count = np.bincount(line_order, minlength=orders + 1)[1:]
    sku = rng.integers(0, PRODUCTS, line_order.size)
    amount = rng.gamma(2.0, 2_500, line_order.size).astype(np.int64) + 100
    totals = np.bincount(line_order, weights=amount, minlength=orders + 1)[1:].astype(np.int64)
    _ingest(
        path,
        "orders",
        pl.DataFrame(
            {
                "id": np.arange(1, orders + 1),
                "external_id": pl.Series(np.arange(1, orders + 1)).cast(pl.String),
                "member_id": buyer,
                "store_id": np.where(
                    rng.random(orders) < 0.8, home[buyer - 1], rng.integers(1, STORES + 1, orders)
                ),
                "ordered_at": ordered_at.dt.strftime(TIME_TEXT),
                "amount_cents": totals,
                "discount_cents": 0,
                "created_at": now,
            }
        ).filter(pl.Series(line_count > 0)),
    )
    first_line = np.concatenate([[0], np.cumsum(line_count)[:-1]])
    _ingest(
        path,
        "order_items",
        pl.DataFrame(
            {
                "order_id": line_order,
                "line_no": np.arange(line_order.size) - first_line[line_order - 1],
                "sku": np.array([f"P{i:05d}" for i in range(PRODUCTS)])[sku],
                "category": np.array(CATEGORIES)[category_of[sku]],
                "quantity": rng.integers(1, 4, line_order.size),
                "amount_cents": amount,
                "discounted": (rng.random(line_order.size) < 0.2).astype(np.int8),
            }
        ),
    )


REFRESH = """
import json, os, resource, sys
from datetime import date
from bench.harness import TreePeak
from tidings.db import make_engine
from tidings.scans import CHILD_READERS
from tidings.profiles.service import refresh

if __name__ == "__main__":
    with TreePeak() as tree:
        result = refresh(engine=make_engine(sys.argv[1]), as_of=date.fromisoformat(sys.argv[2]))
    values = result.as_dict()
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    values["parent_peak_kib"] = own.ru_maxrss
    values["child_peak_kib"] = children.ru_maxrss
    values["parent_cpu_s"] = own.ru_utime + own.ru_stime
    values["children_cpu_s"] = children.ru_utime + children.ru_stime
    values["load"] = os.getloadavg()[0]
    values["children"] = CHILD_READERS
    values["sampled_tree_peak_kib"] = tree.kib
    print(json.dumps(values, ensure_ascii=False))
"""


def add_day(path: Path, seed: int = 5) -> tuple[int, int]:
    """Appends the orders and lines of one more day (as-of day) as a daily import would;
    returns the first order id and the first line id it took."""
    rng = np.random.default_rng(seed)
    with closing(sqlite3.connect(path)) as connection:
        last_order, last_line = connection.execute(
            "SELECT (SELECT MAX(id) FROM orders), (SELECT MAX(id) FROM order_items)"
        ).fetchone()
    lines = LINES // HISTORY_DAYS
    orders = int(lines / LINES_PER_ORDER)
    ids = np.arange(last_order + 1, last_order + orders + 1)
    line_order = np.sort(rng.choice(ids, lines))
    amount = rng.gamma(2.0, 2_500, lines).astype(np.int64) + 100
    day = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC).timestamp()
    seconds = pl.Series(day + rng.integers(0, 86_400, orders), dtype=pl.Int64)
    totals = pl.DataFrame({"id": line_order, "amount": amount}).group_by("id").agg(pl.sum("amount"))
    heads = pl.DataFrame(
        {
            "id": ids,
            "external_id": pl.Series(ids).cast(pl.String),
            "member_id": rng.integers(1, MEMBERS + 1, orders),
            "store_id": rng.integers(1, STORES + 1, orders),
            "ordered_at": pl.from_epoch(seconds, time_unit="s").dt.strftime(TIME_TEXT),
            "discount_cents": 0,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
    ).join(totals.rename({"amount": "amount_cents"}), on="id", how="inner")
    _ingest(path, "orders", heads)
    _ingest(
        path,
        "order_items",
        pl.DataFrame(
            {
                "order_id": line_order,
                "sku": [f"P{i:05d}" for i in rng.integers(0, PRODUCTS, lines)],
                "category": np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), lines)],
                "quantity": rng.integers(1, 4, lines),
                "amount_cents": amount,
                "discounted": 0,
            }
        ).with_columns(line_no=pl.int_range(1, pl.len() + 1).over("order_id")),
    )
    return last_order + 1, last_line + 1


def remove_day(path: Path, first_order: int, first_line: int) -> None:
    """Takes the added day out again, so that the store stays as generated."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DELETE FROM order_items WHERE id >= ?", (first_line,))
        connection.execute("DELETE FROM orders WHERE id >= ?", (first_order,))


def refresh_in_child(label: str) -> float:
    """Runs a refresh in a child process, prints its figures; returns its seconds."""
    done = subprocess.run(
        [sys.executable, "-c", REFRESH, f"sqlite:///{STORE_FILE}", AS_OF.isoformat()],
        cwd=Path(__file__).resolve().parents[2],  # where the bench package is found
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    parent, child = result["parent_peak_kib"] / 1024**2, result["child_peak_kib"] / 1024**2
    peak_gib = parent + result["children"] * child
    print(f"{label}:")
    print(
        f"  peak memory: refresh {parent:.2f} GiB + {result['children']} readers x"
        f" {child:.2f} GiB = {peak_gib:.2f} GiB at most;"
        f" sampled peak of the process tree {result['sampled_tree_peak_kib'] / 1024**2:.2f} GiB"
    )
    print(
        f"  {result['profiles_written']:,} profiles; model: {result['model']};"
        f" tiers {result['tier']}"
    )
    print("  phases: " + ", ".join(f"{name} {s:.1f} s" for name, s in result["phases"].items()))
    # CPU time is steadier than wall time on a machine that others share.
    print(
        f"  cpu: refresh {result['parent_cpu_s']:.1f} s + its processes"
        f" {result['children_cpu_s']:.1f} s (imports included); load {result['load']:.1f}"
    )
    report(
        f"profiles_refresh peak memory, {label}",
        peak_gib,
        "GiB",
        f"<= {TARGET_GIB:.0f} GiB",
        met=peak_gib <= TARGET_GIB,
    )
    return float(result["seconds"])


def run() -> None:
    from tidings import migrate
    from tidings.db import make_engine

    DATA.mkdir(parents=True, exist_ok=True)
    if not STORE_FILE.exists():
        partial = STORE_FILE.with_suffix(".partial")
        for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            leftover.unlink(missing_ok=True)  # of a generation cut short
        generate(partial)
        partial.rename(STORE_FILE)
    engine = make_engine(f"sqlite:///{STORE_FILE}")
    migrate.upgrade(engine)  # a store generated by an earlier version
    engine.dispose()
    # The first refresh of a store reads the orders and lines whole and keeps copies of
    # them beside it; a day later, after that day's import, a refresh reads only the day's.
    shutil.rmtree(Path(f"{STORE_FILE}.copies"), ignore_errors=True)
    first = refresh_in_child("first refresh (no copies yet)")
    report(
        "profiles_refresh first (1M members, 10M lines)",
        first,
        "s",
        f"<= {TARGET_SECONDS:.0f} s",
        met=first <= TARGET_SECONDS,
    )
    added = add_day(STORE_FILE)
    try:
        daily = refresh_in_child(f"daily refresh (after a day's {LINES // HISTORY_DAYS:,} lines)")
    finally:
        remove_day(STORE_FILE, *added)
    report(
        "profiles_refresh (1M members, 10M lines)",
        daily,
        "s",
        f"<= {TARGET_SECONDS:.0f} s",
        met=daily <= TARGET_SECONDS,
    )
