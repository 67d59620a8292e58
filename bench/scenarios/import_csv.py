"""Imports a 1,000,000-member CSV and a 10,000,000-line orders CSV into a fresh SQLite store.

The files are generated with numpy under bench/data/ (git-ignored) and reused when present.
Figures: member rows per second, order lines per second, and the peak resident memory of the
process (with its children's, sampled while the member import runs them), which must stay
bounded because files are streamed in batches.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from bench.harness import TreePeak, report

DATA = Path(__file__).resolve().parent.parent / "data"
MEMBERS = int(os.environ.get("BENCH_IMPORT_MEMBERS", "1000000"))
ORDER_LINES = int(os.environ.get("BENCH_IMPORT_ORDER_LINES", "10000000"))
CHUNK_ROWS = 500_000  # rows generated at a time, to keep generation's memory small
STORES = 30
PRODUCTS = 2_000
MEMBER_TARGET = 100_000  # rows per second
ORDER_TARGET = 200_000  # rows per second
MEMORY_TARGET_MB = 2_000  # peak resident memory, MB
MOBILE_PREFIXES = np.array([130, 131, 132, 135, 136, 137, 138, 139, 150, 151, 158, 159, 186, 188])
NAMES = np.array(["张伟", "王芳", "李娜", "刘洋", "陈静"])
CATEGORIES = np.array(["水果", "生鲜", "母婴", "美妆", "宠物", "数码", "服饰", "日用"])
EPOCH_2023 = 1_672_531_200  # seconds, 2023-01-01 UTC


def _phones(rng: np.random.Generator, ids: np.ndarray) -> pl.Series:
    prefix = MOBILE_PREFIXES[ids % MOBILE_PREFIXES.size].astype(np.int64)
    return pl.Series(prefix * 100_000_000 + (ids * 7_919) % 100_000_000).cast(pl.String)


def _write_members(path: Path, rng: np.random.Generator) -> None:
    with path.open("wb") as handle:
        for first in range(0, MEMBERS, CHUNK_ROWS):
            ids = np.arange(first, min(first + CHUNK_ROWS, MEMBERS), dtype=np.int64)
            born = rng.integers(-7_000, 12_000, ids.size)  # days from 1970-01-01
            joined = EPOCH_2023 + rng.integers(0, 365 * 86_400, ids.size)
            frame = pl.DataFrame(
                {
                    "member_code": pl.Series(ids).cast(pl.String).str.pad_start(7, "0"),
                    "phone": _phones(rng, ids),
                    "name": pl.Series(rng.choice(NAMES, ids.size)),
                    "gender": pl.Series(rng.choice(["男", "女"], ids.size)),
                    "birthday": pl.Series(born).cast(pl.Date).dt.strftime("%Y-%m-%d"),
                    "tier": pl.Series(rng.choice(["普通", "银卡", "金卡"], ids.size)),
                    "points": rng.integers(0, 5_000, ids.size),
                    "store_code": pl.Series(rng.integers(0, STORES, ids.size)).cast(pl.String),
                    "registered_at": pl.Series(joined * 1_000_000).cast(pl.Datetime("us")),
                    "consent": pl.Series(rng.choice(["是", "否"], ids.size)),
                }
            ).with_columns(
                pl.concat_str(pl.lit("M"), "member_code").alias("member_code"),
                pl.concat_str(pl.lit("S"), "store_code").alias("store_code"),
            )
            frame.write_csv(handle, include_header=first == 0, datetime_format="%Y-%m-%d %H:%M:%S")


def _write_orders(path: Path, rng: np.random.Generator) -> None:
    with path.open("wb") as handle:
        for first in range(0, ORDER_LINES, CHUNK_ROWS):
            lines = np.arange(first, min(first + CHUNK_ROWS, ORDER_LINES), dtype=np.int64)
            orders = lines * 2 // 5  # about 2.5 lines per order, lines of an order adjacent
            member = (orders * 2_654_435_761) % MEMBERS
            at = EPOCH_2023 + orders * (2 * 365 * 86_400) // max(ORDER_LINES * 2 // 5, 1)
            sku = rng.integers(0, PRODUCTS, lines.size)
            frame = pl.DataFrame(
                {
                    "order_id": pl.Series(orders).cast(pl.String),
                    "ordered_at": pl.Series(at * 1_000_000).cast(pl.Datetime("us")),
                    "member_code": pl.Series(member).cast(pl.String).str.pad_start(7, "0"),
                    "phone": _phones(rng, member),
                    "store_code": pl.Series(member % STORES).cast(pl.String),
                    "sku": pl.Series(sku).cast(pl.String),
                    "category": pl.Series(CATEGORIES[sku % CATEGORIES.size]),
                    "quantity": rng.integers(1, 4, lines.size),
                    "amount": pl.Series(rng.integers(100, 50_000, lines.size) / 100).round(2),
                    "discount": pl.Series(rng.choice(["是", "否"], lines.size)),
                }
            ).with_columns(pl.concat_str(pl.lit("SO"), "order_id").alias("order_id"),
                           pl.concat_str(pl.lit("M"), "member_code").alias("member_code"),
                           pl.concat_str(pl.lit("S"), "store_code").alias("store_code"),
                           pl.concat_str(pl.lit("P"), "sku").alias("sku"))  # fmt: skip
            frame.write_csv(handle, include_header=first == 0, datetime_format="%Y-%m-%d %H:%M:%S")


def _write_catalogue(stores: Path, products: Path) -> None:
    pl.DataFrame(
        {"code": [f"S{n}" for n in range(STORES)], "name": [f"门店{n}" for n in range(STORES)],
         "city": ["上海"] * STORES, "type": ["社区店"] * STORES,
         "latitude": [31.2] * STORES, "longitude": [121.4] * STORES}
    ).write_csv(stores)  # fmt: skip
    pl.DataFrame(
        {"sku": [f"P{n}" for n in range(PRODUCTS)], "name": [f"商品{n}" for n in range(PRODUCTS)],
         "category": [str(CATEGORIES[n % CATEGORIES.size]) for n in range(PRODUCTS)],
         "pack_size_days": [30] * PRODUCTS, "price": ["9.90"] * PRODUCTS}
    ).write_csv(products)  # fmt: skip


def data_files() -> dict[str, Path]:
    """The bench's CSV files, generated once (deterministically) and reused."""
    DATA.mkdir(parents=True, exist_ok=True)
    files = {
        "stores": DATA / "stores.csv",
        "products": DATA / "products.csv",
        "members": DATA / f"members_{MEMBERS}.csv",
        "orders": DATA / f"orders_{ORDER_LINES}.csv",
    }
    rng = np.random.default_rng(2)
    if not (files["stores"].exists() and files["products"].exists()):
        _write_catalogue(files["stores"], files["products"])
    if not files["members"].exists():
        _write_members(files["members"], rng)
    if not files["orders"].exists():
        _write_orders(files["orders"], rng)
    return files


def run() -> None:
    """Measures both imports on a fresh SQLite store and reports rows/s and peak memory."""
    files = data_files()
    from tidings import migrate
    from tidings.db import make_engine
    from tidings.members.importer import import_members, import_stores
    from tidings.orders.importer import import_orders, import_products

    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate.upgrade(engine)
        import_stores(engine=engine, path=files["stores"])
        import_products(engine=engine, path=files["products"])
        started = time.perf_counter()
        # The member import stages its rows through children: their memory counts too.
        with TreePeak() as tree:
            members = import_members(
                engine=engine, path=files["members"], rejects_path=Path(folder) / "m.csv"
            )
        member_seconds = time.perf_counter() - started
        started = time.perf_counter()
        orders = import_orders(
            engine=engine, path=files["orders"], rejects_path=Path(folder) / "o.csv"
        )
        order_seconds = time.perf_counter() - started
        engine.dispose()
    if members.rows != MEMBERS or orders.inserted != ORDER_LINES:
        sys.exit(f"bench import_csv: imports lost rows: {members.as_dict()} {orders.as_dict()}")
    member_rate, order_rate = members.rows / member_seconds, orders.rows / order_seconds
    peak_mb = max(tree.mib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report(
        "import_csv members",
        member_rate,
        "rows/s",
        f">= {MEMBER_TARGET:,}",
        met=member_rate >= MEMBER_TARGET,
    )
    report(
        "import_csv order lines",
        order_rate,
        "rows/s",
        f">= {ORDER_TARGET:,}",
        met=order_rate >= ORDER_TARGET,
    )
    report(
        "import_csv peak memory",
        peak_mb,
        "MB",
        f"<= {MEMORY_TARGET_MB:,}",
        met=peak_mb <= MEMORY_TARGET_MB,
    )
