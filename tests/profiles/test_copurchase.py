"""Association rules and recommendations on synthetic bases with planted co-purchase patterns."""

from __future__ import annotations

import random
from dataclasses import replace

import polars as pl
import pytest

from tidings.profiles import copurchase
from tidings.profiles.copurchase import (
    RECOMMENDATION_SCHEMA,
    RuleLimits,
    association_rules,
    reason,
)
from tidings.profiles.preferences import category_preferences

NAPPIES, FORMULA, WIPES = "BB01", "BB02", "BB03"
APPLES, PEARS, BEER, WINE = "FR01", "FR02", "DR01", "DR02"
CATEGORY = {NAPPIES: "母婴", FORMULA: "母婴", WIPES: "母婴", APPLES: "水果", PEARS: "水果"}
CATEGORY |= {BEER: "酒水", WINE: "酒水"}
NAMES = {NAPPIES: "婴儿纸尿裤", FORMULA: "婴儿配方奶粉", WIPES: "婴儿湿巾", APPLES: "苹果"}
PRODUCTS = pl.DataFrame({"sku": list(NAMES), "name": list(NAMES.values())})
LIMITS = RuleLimits(min_pair_members=5, min_confidence=0.05, min_lift=1.2)


def lines_of(baskets: dict[int, list[str]]) -> pl.DataFrame:
    """One order line per (member, sku) listed; a sku listed twice is bought twice."""
    rows = [
        {"member_id": member, "sku": sku, "category": CATEGORY[sku], "amount_cents": 1_000}
        for member, skus in baskets.items()
        for sku in skus
    ]
    return pl.DataFrame(
        rows,
        schema={
            "member_id": pl.Int64,
            "sku": pl.String,
            "category": pl.String,
            "amount_cents": pl.Int64,
        },
    )


def recommendations(
    lines: pl.DataFrame, products: pl.DataFrame, *, limits: RuleLimits
) -> pl.DataFrame:
    """Recommendations with the favourite categories a refresh computes."""
    favourites = category_preferences(lines, top=3)
    return copurchase.recommendations(lines, products, favourites, limits=limits)


def planted_base() -> dict[int, list[str]]:
    """1,000 members: 300 buy nappies, 180 of them formula too; 50 others buy formula alone.

    Apples go to every third member whatever else they buy, so apples pull nothing along.
    """
    base: dict[int, list[str]] = {}
    for member in range(1, 1_001):
        basket = []
        if member <= 300:
            basket.append(NAPPIES)
        if member <= 180 or 301 <= member <= 350:
            basket.append(FORMULA)
        if member % 3 == 0:
            basket.append(APPLES)
        base[member] = basket or [PEARS]
    return base


def rule(rules: pl.DataFrame, antecedent: str, consequent: str) -> dict[str, object]:
    found = rules.filter(
        (pl.col("antecedent").cast(pl.String) == antecedent)
        & (pl.col("consequent").cast(pl.String) == consequent)
    )
    assert found.height == 1, f"no rule {antecedent} -> {consequent}"
    return found.row(0, named=True)


def test_a_planted_pair_is_found_with_its_support_confidence_and_lift() -> None:
    rules = association_rules(lines_of(planted_base()), item="sku", limits=LIMITS)
    nappies_formula = rule(rules, NAPPIES, FORMULA)
    assert nappies_formula["pair_members"] == 180
    assert nappies_formula["antecedent_members"] == 300
    assert nappies_formula["support"] == pytest.approx(0.18)
    assert nappies_formula["confidence"] == pytest.approx(0.6)
    assert nappies_formula["lift"] == pytest.approx(0.6 / 0.23, abs=1e-4)
    formula_nappies = rule(rules, FORMULA, NAPPIES)
    assert formula_nappies["confidence"] == pytest.approx(180 / 230, abs=1e-4)


def test_independent_products_make_no_rule() -> None:
    rules = association_rules(lines_of(planted_base()), item="sku", limits=LIMITS)
    pairs = {(str(a), str(c)) for a, c in rules.select("antecedent", "consequent").iter_rows()}
    assert (NAPPIES, APPLES) not in pairs
    assert (APPLES, FORMULA) not in pairs
    assert pairs == {(NAPPIES, FORMULA), (FORMULA, NAPPIES)}


def test_rules_need_enough_members_behind_them() -> None:
    strict = replace(LIMITS, min_pair_members=181)
    assert association_rules(lines_of(planted_base()), item="sku", limits=strict).height == 0


def test_a_nappy_buyer_is_offered_formula_with_the_reason() -> None:
    base = planted_base()
    picks = recommendations(lines_of(base), PRODUCTS, limits=LIMITS)
    assert picks.schema == pl.Schema(RECOMMENDATION_SCHEMA)
    newcomer = picks.filter(pl.col("member_id") == 200).row(0, named=True)
    assert newcomer["recommended_sku"] == FORMULA
    assert newcomer["recommended_product"] == "婴儿配方奶粉"
    assert newcomer["recommended_category"] == "母婴"
    assert newcomer["recommendation_basis"] == "product"
    assert newcomer["recommendation_because"] == "婴儿纸尿裤"
    text = reason(
        basis="product",
        because=newcomer["recommendation_because"],
        item=newcomer["recommended_product"],
        confidence=newcomer["recommendation_confidence"],
        language="en",
    )
    assert text == "bought together with 婴儿纸尿裤 by 60% of members who buy 婴儿纸尿裤"


def test_a_product_bought_regularly_is_not_offered_but_one_bought_once_is() -> None:
    base = planted_base()
    base[1] = [NAPPIES, FORMULA, FORMULA]  # formula twice: regular, so nappies are offered
    base[2] = [NAPPIES, NAPPIES, FORMULA]  # formula once: still worth offering
    picks = recommendations(lines_of(base), PRODUCTS, limits=LIMITS)
    offered = dict(picks.select("member_id", "recommended_sku").iter_rows())
    assert offered[1] == NAPPIES
    assert offered[2] == FORMULA
    assert offered[301] == NAPPIES  # formula alone points back to nappies
    assert 900 not in offered  # pears lead nowhere


def test_category_affinity_decides_between_equally_strong_rules() -> None:
    """Beer and wipes are each bought by half of the nappy buyers; the member who spends
    mostly in 酒水 gets beer, the one who spends only in 母婴 gets wipes."""
    rng = random.Random(7)
    base: dict[int, list[str]] = {}
    for member in range(1, 801):
        basket = [NAPPIES] if member <= 400 else [PEARS]
        if member <= 200:
            basket.append(WIPES)
        if 201 <= member <= 400 or (member > 400 and rng.random() < 0.05):
            basket.append(BEER)
        base[member] = basket
    base[1000] = [NAPPIES]
    base[1001] = [NAPPIES, WINE, WINE, WINE]
    picks = recommendations(lines_of(base), PRODUCTS, limits=LIMITS)
    rules = association_rules(lines_of(base), item="sku", limits=LIMITS)
    assert rule(rules, NAPPIES, WIPES)["confidence"] == rule(rules, NAPPIES, BEER)["confidence"]
    offered = dict(picks.select("member_id", "recommended_sku").iter_rows())
    assert offered[1000] == WIPES  # all of this member's spend is in 母婴
    assert offered[1001] == BEER  # three quarters of this member's spend is in 酒水


def test_a_member_whose_products_lead_nowhere_gets_a_category_pick() -> None:
    """Fruit buyers mostly buy 母婴 too, through different products each: no product rule
    reaches them, the category rule does, with the best-selling product of 母婴."""
    base: dict[int, list[str]] = {}
    for member in range(1, 601):
        fruit = APPLES if member % 2 else PEARS
        baby = [NAPPIES, FORMULA, WIPES][member % 3] if member <= 300 else None
        base[member] = [fruit] + ([baby] if baby else [])
    base[601] = [NAPPIES]  # anchors nothing; a buyer with no fruit
    for member in range(602, 900):
        base[member] = [BEER]
    base[950] = [PEARS]
    # 50 members per pair of products, 300 for the pair of categories.
    limits = replace(LIMITS, min_pair_members=100)
    picks = recommendations(lines_of(base), PRODUCTS, limits=limits)
    pick = picks.filter(pl.col("member_id") == 950).row(0, named=True)
    assert pick["recommendation_basis"] == "category"
    assert pick["recommended_category"] == "母婴"
    assert pick["recommendation_because"] == "水果"
    assert pick["recommended_sku"] == NAPPIES  # bought by 101 members, formula and wipes 100
    assert reason(
        basis="category",
        because="水果",
        item="母婴",
        confidence=pick["recommendation_confidence"],
        language="zh",
    ).startswith("购买水果类商品的会员中，")


def test_a_sample_of_members_finds_the_same_rule() -> None:
    base = planted_base()
    sampled = recommendations(lines_of(base), PRODUCTS, limits=replace(LIMITS, sample_members=600))
    offered = dict(sampled.select("member_id", "recommended_sku").iter_rows())
    assert offered[200] == FORMULA
