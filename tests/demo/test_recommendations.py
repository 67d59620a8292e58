"""The demo chain's baskets hold real co-purchase patterns, so its members get sensible
recommendations: nappy buyers are offered formula, power bank buyers a cable."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tidings.demo.catalogue import COMPANIONS
from tidings.profiles import copurchase
from tidings.profiles.preferences import category_preferences
from tidings.profiles.thresholds import ProfileThresholds

# One worker of a parallel run takes them all: they read the one generated retailer.
pytestmark = pytest.mark.xdist_group("demo-retailer")


@pytest.fixture(scope="module")
def catalogue(retailer: Path) -> pl.DataFrame:
    return pl.read_csv(retailer / "products.csv", infer_schema=False).select("sku", "name")


@pytest.fixture(scope="module")
def lines(retailer: Path) -> pl.DataFrame:
    """Order lines as a refresh reads them: member, order, product, category, amount."""
    return pl.read_csv(retailer / "orders.csv", infer_schema=False).select(
        member_id=pl.col("member_code").str.slice(1).cast(pl.Int64),
        order_id="order_id",
        sku="sku",
        category="category",
        amount_cents=(pl.col("amount").cast(pl.Float64) * 100).round().cast(pl.Int64),
    )


def sku_of(catalogue: pl.DataFrame, name: str) -> str:
    return str(catalogue.filter(pl.col("name") == name)["sku"].item())


def test_every_companion_pair_is_a_rule_with_a_strong_lift(
    lines: pl.DataFrame, catalogue: pl.DataFrame
) -> None:
    limits = copurchase.limits_from(ProfileThresholds())
    rules = copurchase.association_rules(lines, item="sku", limits=limits)
    found = {(a, c): lift for a, c, lift in rules.select("antecedent", "consequent", "lift").rows()}
    for pair in COMPANIONS:
        key = (sku_of(catalogue, pair.product), sku_of(catalogue, pair.companion))
        assert key in found, f"{pair.product} -> {pair.companion} is not a rule"
        assert found[key] >= 2.0, (pair, found[key])


def test_nappy_buyers_without_formula_are_offered_formula_most(
    lines: pl.DataFrame, catalogue: pl.DataFrame
) -> None:
    nappies = sku_of(catalogue, "婴儿纸尿裤 L码 120片")
    formula = sku_of(catalogue, "婴儿配方奶粉 3段 800g")
    limits = copurchase.limits_from(ProfileThresholds())
    picks = copurchase.recommendations(
        lines, catalogue, category_preferences(lines, top=3), limits=limits
    )
    bought = lines.group_by("member_id").agg(pl.col("sku"))
    newcomers = bought.filter(
        pl.col("sku").list.contains(nappies) & ~pl.col("sku").list.contains(formula)
    )
    offered = picks.join(newcomers, on="member_id", how="semi")
    assert newcomers.height >= 10
    ranked = (
        offered.group_by("recommended_sku").len().sort("len", "recommended_sku", descending=True)
    )
    assert ranked["recommended_sku"][0] == formula  # the most common offer among them
    baby = (offered["recommended_category"] == "母婴").mean()
    assert baby is not None and baby >= 0.6  # most are offered something for the baby
    reason = offered.filter(pl.col("recommended_sku") == formula).row(0, named=True)
    assert reason["recommendation_because"] == "婴儿纸尿裤 L码 120片"
    assert reason["recommended_product"] == "婴儿配方奶粉 3段 800g"
