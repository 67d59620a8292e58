"""The demo members shop like real ones: unequal, loyal to habits, some gone, some on schedule."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tidings.demo.catalogue import STORE_TYPES

# One worker of a parallel run takes them all: they read the one generated retailer.
pytestmark = pytest.mark.xdist_group("demo-retailer")
PERIOD_END = datetime(2025, 7, 1)  # midnight after the `retailer` fixture's last day


@pytest.fixture(scope="module")
def lines(retailer: Path) -> pl.DataFrame:
    """Order lines with their time parsed and their product's pack size."""
    products = pl.read_csv(retailer / "products.csv", infer_schema=False).select(
        "sku", pl.col("pack_size_days").cast(pl.Int64)
    )
    return (
        pl.read_csv(retailer / "orders.csv", infer_schema=False)
        .with_columns(
            at=pl.col("ordered_at").str.to_datetime("%Y-%m-%d %H:%M:%S"),
            quantity=pl.col("quantity").cast(pl.Int64),
        )
        .join(products, on="sku", how="left")
    )


@pytest.fixture(scope="module")
def orders(lines: pl.DataFrame) -> pl.DataFrame:
    """One row per order."""
    return lines.group_by("order_id").agg(pl.first("member_code", "store_code", "at"))


def test_a_few_heavy_buyers_and_many_occasional_ones(retailer: Path, orders: pl.DataFrame) -> None:
    members = pl.read_csv(retailer / "members.csv", infer_schema=False).select("member_code")
    counts = (
        members.join(orders.group_by("member_code").len(), on="member_code", how="left")
        .fill_null(0)["len"]
        .sort(descending=True)
    )
    top_tenth = counts.head(counts.len() // 10).sum() / counts.sum()
    assert top_tenth > 0.35
    assert counts.median() <= counts.mean() * 0.75  # a long tail, not a bell
    assert (counts == 0).mean() > 0.05  # dormant members who bought nothing this year
    assert counts.max() >= 10 * counts.median()


def test_some_regular_buyers_stop_long_before_the_end(orders: pl.DataFrame) -> None:
    regulars = (
        orders.sort("at")
        .group_by("member_code")
        .agg(
            count=pl.len(),
            gap_days=pl.col("at").diff().dt.total_seconds().median() / 86_400,
            silent_days=(pl.lit(PERIOD_END) - pl.col("at").max()).dt.total_seconds() / 86_400,
        )
        .filter(pl.col("count") >= 5)
    )
    # Without dropping out, a member is silent for five typical gaps about 0.7% of the time.
    gone = regulars.select(
        pl.col("silent_days") > pl.max_horizontal(pl.lit(60.0), 5 * pl.col("gap_days"))
    ).to_series()
    assert gone.mean() > 0.05


def test_consumables_are_bought_again_near_their_pack_size(lines: pl.DataFrame) -> None:
    repeats = (
        lines.filter(pl.col("pack_size_days") >= 14)
        .group_by("member_code", "sku")
        .agg(pl.col("at", "quantity").sort_by("at"), pl.first("pack_size_days"))
        .filter(pl.col("at").list.len() >= 3)
        .explode("at", "quantity")
        .with_columns(
            gap=pl.col("at").diff().over("member_code", "sku").dt.total_seconds() / 86_400,
            lasts=pl.col("pack_size_days") * pl.col("quantity").shift().over("member_code", "sku"),
        )
        .drop_nulls("gap")
    )
    ratio = repeats["gap"] / repeats["lasts"]
    assert repeats.height > 500
    assert 0.85 < ratio.median() < 1.2
    assert ratio.is_between(0.75, 1.35).mean() > 0.6


def test_each_member_shops_at_about_the_same_hour(orders: pl.DataFrame) -> None:
    hours = orders.with_columns(hour=pl.col("at").dt.hour() + pl.col("at").dt.minute() / 60)
    spread = (
        hours.group_by("member_code")
        .agg(count=pl.len(), spread=pl.col("hour").std())
        .filter(pl.col("count") >= 8)
    )
    assert spread.height > 100
    assert spread["spread"].median() < 2.0
    assert hours["hour"].std() > 3.5  # while the chain as a whole sells all day


def test_orders_fall_inside_the_hours_of_their_store(retailer: Path, orders: pl.DataFrame) -> None:
    hours = pl.DataFrame(
        {
            "type": [kind.name for kind in STORE_TYPES],
            "opens": [kind.opens_hour for kind in STORE_TYPES],
            "closes": [kind.closes_hour for kind in STORE_TYPES],
        }
    )
    stores = pl.read_csv(retailer / "stores.csv", infer_schema=False).join(hours, on="type")
    timed = orders.join(stores, left_on="store_code", right_on="code").with_columns(
        hour=pl.col("at").dt.hour()
        + pl.col("at").dt.minute() / 60
        + pl.col("at").dt.second() / 3600
    )
    assert timed.height == orders.height
    assert ((timed["hour"] >= timed["opens"]) & (timed["hour"] < timed["closes"])).all()


def test_members_keep_to_a_few_favourite_categories(lines: pl.DataFrame) -> None:
    shares = (
        lines.group_by("member_code", "category")
        .len()
        .group_by("member_code")
        .agg(total=pl.col("len").sum(), top_three=pl.col("len").top_k(3).sum())
        .filter(pl.col("total") >= 10)
    )
    # Eleven categories: a member buying at random would put well under 60% in any three.
    assert (shares["top_three"] / shares["total"]).mean() > 0.75
    favourite = lines.group_by("member_code").agg(pl.col("category").mode().first())
    assert favourite["category"].n_unique() >= 8  # different members, different favourites
