"""Writes the demo chain as the CSV files a retailer's POS would export, the same for a seed.

Members are simulated in blocks with a random stream of their own, so memory stays bounded
for a million members and the files do not depend on how fast the machine is. The files are
stores.csv, products.csv, members.csv and orders.csv, plus a manifest that records the
parameters (and, with `dirty` above zero, a small GBK-encoded members_gbk.csv).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from tidings import clock
from tidings.config import get_settings
from tidings.demo import mess
from tidings.demo.chain import Catalogue, Stores, build_catalogue, build_stores
from tidings.demo.people import Shoppers, draw_shoppers, identities, local_epoch
from tidings.demo.purchases import simulate_lines

GENERATOR_VERSION = 2  # bump when the same parameters would produce different files
BLOCK_MEMBERS = 25_000  # members simulated at once; bounds memory (about 200 MB)
MAX_MEMBERS = 5_000_000
MAX_MONTHS = 120
MAX_DIRTY = 0.5  # share of rows
GOLD_SHARE, SILVER_SHARE = 0.05, 0.20  # of members, by spend in the period
EARLIER_POINTS_MEAN = 300  # points, kept from before the period by members who joined earlier
MANIFEST = "manifest.json"
GBK_FILE = "members_gbk.csv"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

HEADERS = {
    "stores.csv": ("code", "name", "city", "type", "latitude", "longitude"),
    "products.csv": ("sku", "name", "category", "pack_size_days", "price"),
    "members.csv": (
        "member_code", "phone", "name", "gender", "birthday", "tier", "points", "store_code",
        "registered_at", "consent",
    ),
    "orders.csv": (
        "order_id", "ordered_at", "member_code", "phone", "store_code", "sku", "category",
        "quantity", "amount", "discount",
    ),
}  # fmt: skip


class DemoError(ValueError):
    """A demo request that cannot be honoured; the message says what to change."""


@dataclass(frozen=True)
class RetailerSpec:
    """What to generate: how many members, how many months up to `end`, which seed, how dirty."""

    members: int
    months: int
    seed: int
    end: date
    dirty: float = 0.0

    def check(self) -> None:
        """Raises DemoError when a parameter is out of range."""
        if not 1 <= self.members <= MAX_MEMBERS:
            raise DemoError(f"--members {self.members}: choose between 1 and {MAX_MEMBERS:,}")
        if not 1 <= self.months <= MAX_MONTHS:
            raise DemoError(f"--months {self.months}: choose between 1 and {MAX_MONTHS}")
        if not 0.0 <= self.dirty <= MAX_DIRTY:
            raise DemoError(f"--dirty {self.dirty}: choose a share between 0 and {MAX_DIRTY}")
        if self.seed < 0:
            raise DemoError(f"--seed {self.seed}: choose a seed of 0 or more")

    def same_files_as(self, manifest: dict[str, Any]) -> bool:
        """Tells whether a manifest records files made for these members, months, seed, dirt."""
        wanted: dict[str, Any] = {"members": self.members, "months": self.months, "seed": self.seed}
        wanted |= {"dirty": self.dirty, "generator": GENERATOR_VERSION}
        return all(manifest.get(key) == value for key, value in wanted.items())


@dataclass(frozen=True)
class GeneratedRetailer:
    """The files of one demo retailer and how many rows each holds."""

    directory: Path
    spec: RetailerSpec
    rows: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """The manifest: parameters, period and row counts."""
        spec = asdict(self.spec) | {"end": self.spec.end.isoformat()}
        start = period_start(end=self.spec.end, months=self.spec.months).isoformat()
        return spec | {"generator": GENERATOR_VERSION, "start": start, "rows": self.rows}


def yesterday() -> date:
    """The last full day in the default timezone: where a nightly POS export ends."""
    zone = ZoneInfo(get_settings().default_timezone)
    return clock.now().astimezone(zone).date() - timedelta(days=1)


def period_start(*, end: date, months: int) -> date:
    """The first day of the `months` months that end on `end` (inclusive)."""
    month_index = end.year * 12 + end.month - 1 - months
    year, month = divmod(month_index, 12)
    next_month = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return date(year, month + 1, min(end.day, last_day)) + timedelta(days=1)


def read_manifest(*, directory: Path) -> dict[str, Any] | None:
    """Returns the manifest of a complete demo in `directory`, or None when there is none."""
    path = directory / MANIFEST
    if not path.exists() or not all((directory / name).exists() for name in HEADERS):
        return None
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest


def generate_retailer(*, spec: RetailerSpec, directory: Path) -> GeneratedRetailer:
    """Writes the four CSV files (and the manifest, last) of the retailer `spec` describes."""
    spec.check()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    start = period_start(end=spec.end, months=spec.months)
    period_days = (spec.end - start).days + 1
    rng = np.random.default_rng([spec.seed, 0])
    stores, catalogue = build_stores(rng=rng), build_catalogue()
    shoppers = draw_shoppers(rng=rng, count=spec.members, stores=stores, period_days=period_days)
    people = identities(rng=rng, shoppers=shoppers, end=spec.end, period_start=start)
    order_rows, spend = _write_order_file(
        spec=spec,
        directory=directory,
        shoppers=shoppers,
        people=people,
        stores=stores,
        catalogue=catalogue,
        start=start,
    )
    member_rows = _write_members(
        people=people.with_columns(
            store_code=stores.frame["code"].gather(shoppers.home_store),
            **_tiers_and_points(spec=spec, spend=spend, before=shoppers.registered_day < 0),
        ).select(HEADERS["members.csv"]),
        spec=spec,
        directory=directory,
    )
    stores.frame.write_csv(directory / "stores.csv")
    catalogue.frame.write_csv(directory / "products.csv")
    counts = {"stores.csv": stores.frame.height, "products.csv": catalogue.frame.height}
    counts |= {"members.csv": member_rows, "orders.csv": order_rows}
    generated = GeneratedRetailer(directory=directory, spec=spec, rows=counts)
    manifest = json.dumps(generated.as_dict(), ensure_ascii=False, indent=2) + "\n"
    (directory / MANIFEST).write_text(manifest, encoding="utf-8")
    return generated


def _write_order_file(
    *,
    spec: RetailerSpec,
    directory: Path,
    shoppers: Shoppers,
    people: pl.DataFrame,
    stores: Stores,
    catalogue: Catalogue,
    start: date,
) -> tuple[int, np.ndarray]:
    """Simulates the members block by block into orders.csv; returns its rows and each spend."""
    period_days = (spec.end - start).days + 1
    spend = np.zeros(spec.members)
    first_order, order_rows = 0, 0
    with (directory / "orders.csv").open("wb") as out:
        out.write((",".join(HEADERS["orders.csv"]) + "\n").encode())
        for block, low in enumerate(range(0, spec.members, BLOCK_MEMBERS)):
            members = np.arange(low, min(low + BLOCK_MEMBERS, spec.members))
            lines = simulate_lines(
                rng=np.random.default_rng([spec.seed, 1, block]),
                shoppers=shoppers,
                members=members,
                stores=stores,
                catalogue=catalogue,
                period_days=period_days,
            )
            spend += np.bincount(
                lines["member"].to_numpy(),
                weights=lines["amount_cents"].to_numpy(),
                minlength=spec.members,
            )
            rows = _order_rows(
                lines=lines,
                first_order=first_order,
                start=start,
                phones=people["phone"],
                stores=stores,
                catalogue=catalogue,
            )
            first_order += lines["order"].n_unique()
            order_rows += _write_orders(rows=rows, spec=spec, block=block, out=out)
    return order_rows, spend


def _order_rows(
    *,
    lines: pl.DataFrame,
    first_order: int,
    start: date,
    phones: pl.Series,
    stores: Stores,
    catalogue: Catalogue,
) -> pl.DataFrame:
    """Formats simulated lines as orders.csv rows; lines of one order sit together."""
    member = lines["member"]
    cents = pl.col("amount_cents")
    number = (pl.col("order") != pl.col("order").shift()).fill_null(True).cum_sum()
    return lines.with_columns(
        order_id="SO" + (number + first_order).cast(pl.String).str.zfill(10),
        ordered_at=pl.from_epoch(pl.col("at") + local_epoch(start), time_unit="s").dt.strftime(
            TIME_FORMAT
        ),
        member_code="M" + (pl.col("member") + 1).cast(pl.String).str.zfill(8),
        phone=pl.when("with_phone").then(pl.lit(phones.gather(member))).otherwise(None),
        store_code=pl.lit(stores.frame["code"].gather(lines["store"])),
        sku=pl.lit(catalogue.frame["sku"].gather(lines["product"])),
        category=pl.lit(catalogue.frame["category"].gather(lines["product"])),
        quantity=pl.col("quantity").cast(pl.String),
        amount=_yuan(cents),
        discount=pl.when("discounted").then(pl.lit("yes")).otherwise(pl.lit("no")),
    ).select(HEADERS["orders.csv"])


def _yuan(cents: pl.Expr) -> pl.Expr:
    """Formats integer cents as yuan with two decimals: 1250 -> '12.50'."""
    return (cents // 100).cast(pl.String) + "." + (cents % 100).cast(pl.String).str.zfill(2)


def _write_orders(*, rows: pl.DataFrame, spec: RetailerSpec, block: int, out: BinaryIO) -> int:
    """Appends one block of order rows with the mess `spec.dirty` asks for; returns its rows."""
    if spec.dirty == 0:
        rows.write_csv(out, include_header=False)
        return rows.height
    rng = np.random.default_rng([spec.seed, 2, block])
    messy = mess.messy_orders(rng=rng, frame=rows, share=spec.dirty, tag=f"{block:03d}")
    text = messy.write_csv(include_header=False).encode()
    out.write(mess.with_blank_lines(rng=rng, text=text, share=spec.dirty / 4))
    return messy.height


def _tiers_and_points(
    *, spec: RetailerSpec, spend: np.ndarray, before: np.ndarray
) -> dict[str, pl.Series]:
    """Tiers by spend in the period (gold the top 5%), and the points kept from before it:
    the period's orders earn theirs when they are imported (one per yuan by default)."""
    rank = np.empty(spend.size, dtype=np.int64)
    rank[np.argsort(-spend, kind="stable")] = np.arange(spend.size)
    gold = (rank < GOLD_SHARE * spend.size) & (spend > 0)
    silver = (rank < (GOLD_SHARE + SILVER_SHARE) * spend.size) & (spend > 0) & ~gold
    rng = np.random.default_rng([spec.seed, 4])
    earlier = np.where(before, rng.exponential(EARLIER_POINTS_MEAN, spend.size), 0)
    points = earlier.astype(np.int64)
    tier = np.where(gold, "gold", np.where(silver, "silver", "bronze"))
    return {"tier": pl.Series(tier), "points": pl.Series(points).cast(pl.String)}


def _write_members(*, people: pl.DataFrame, spec: RetailerSpec, directory: Path) -> int:
    """Writes members.csv (dirty: with a BOM, mess and blank lines, and members_gbk.csv)."""
    path = directory / "members.csv"
    if spec.dirty == 0:
        (directory / GBK_FILE).unlink(missing_ok=True)
        people.write_csv(path)
        return people.height
    rng = np.random.default_rng([spec.seed, 3])
    messy = mess.messy_members(rng=rng, frame=people, share=spec.dirty)
    text = mess.with_blank_lines(rng=rng, text=messy.write_csv().encode(), share=spec.dirty / 13)
    path.write_bytes(mess.UTF8_BOM + text)
    (directory / GBK_FILE).write_bytes(mess.gbk_members(people))
    return messy.height
