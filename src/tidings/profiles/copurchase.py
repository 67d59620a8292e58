"""What each member may buy next: association rules mined from the whole base's purchases
(pairs of products and pairs of categories, with support, confidence and lift), weighed by
the member's category affinity, each with its reason in words.

A member's basket is the set of products they bought up to the as-of day. A rule A -> B
says how many of the members who buy A also buy B: support is the share of all members who
buy both, confidence the share of A's buyers who also buy B, lift the confidence over B's
share of all members (above 1: buying A makes B more likely). Rules are mined on a fixed
sample of purchasers, since a share measured over 50,000 members is as good as over a
million. Pairs are counted as the product of the sparse member-by-item matrix with itself
(one pass in C over each member's items, where a Polars self-join would build every pair as
a row first); everything else is Polars joins over all members: no loop per member or order.

A member is offered the product that scores best among the consequents of the products they
bought, leaving out products they already buy regularly: score = confidence x (1 + the
member's share of spend in the product's category). A member whose products lead nowhere
gets the best-selling product of the category their favourite categories point to most
strongly, one that is not among their favourites yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse

from tidings.profiles.thresholds import ProfileThresholds

# The reasons shown to operators, in both languages ({share} is a percentage of members).
REASONS: dict[str, dict[str, str]] = {
    "product": {
        "zh": "购买「{because}」的会员中，{share} 也购买了「{item}」",
        "en": "bought together with {because} by {share} of members who buy {because}",
    },
    "category": {
        "zh": "购买{because}类商品的会员中，{share} 也购买{item}类商品",
        "en": "{item} bought by {share} of members who buy {because}",
    },
}
RULE_DIGITS = 4
RULE_SCHEMA: dict[str, pl.DataType] = {
    "antecedent": pl.String(),
    "consequent": pl.String(),
    "pair_members": pl.Int64(),
    "antecedent_members": pl.Int64(),
    "support": pl.Float64(),
    "confidence": pl.Float64(),
    "lift": pl.Float64(),
}
RECOMMENDATION_SCHEMA: dict[str, pl.DataType] = {
    "member_id": pl.Int64(),
    "recommended_sku": pl.String(),
    "recommended_product": pl.String(),
    "recommended_category": pl.String(),
    "recommendation_basis": pl.String(),
    "recommendation_because": pl.String(),
    "recommendation_confidence": pl.Float64(),
    "recommendation_lift": pl.Float64(),
}
RECOMMENDATION_COLUMNS = tuple(name for name in RECOMMENDATION_SCHEMA if name != "member_id")


@dataclass(frozen=True)
class RuleLimits:
    """Which rules count: enough members behind them, and a real pull from A to B."""

    min_pair_members: int = 20  # members of the sample who bought both
    min_confidence: float = 0.05  # share of A's buyers who also buy B
    min_lift: float = 1.5  # B at least this much likelier among A's buyers than among all
    per_item: int = 10  # strongest consequents kept per antecedent
    sample_members: int = 50_000  # purchasers the rules are mined on
    regular_purchases: int = 2  # a product bought this often is bought regularly: not offered


def limits_from(thresholds: ProfileThresholds) -> RuleLimits:
    """The rule limits a profile refresh uses, from its thresholds."""
    t = thresholds
    return RuleLimits(
        min_pair_members=t.recommend_min_pair_members,
        min_confidence=t.recommend_min_confidence,
        min_lift=t.recommend_min_lift,
        per_item=t.recommend_per_item,
        sample_members=t.recommend_sample_members,
        regular_purchases=t.recommend_regular_purchases,
    )


def reason(*, basis: str, because: str, item: str, confidence: float, language: str) -> str:
    """The reason for a recommendation in `language` (zh or en)."""
    share = f"{round(confidence * 100)}%"
    return REASONS[basis][language].format(because=because, item=item, share=share)


def sample_baskets(
    lines: pl.DataFrame, *, buyers: pl.Series, members: int, seed: int = 0
) -> pl.DataFrame:
    """Distinct member_id, sku, category of a fixed random sample of `members` of `buyers`."""
    chosen = buyers.unique().sort()
    if chosen.len() > members:
        chosen = chosen.sample(members, seed=seed)
    return (
        lines.lazy()
        .filter(pl.col("sku").is_not_null())
        .join(chosen.to_frame("member_id").lazy(), on="member_id", how="semi")
        .select("member_id", "sku", "category")
        .unique(["member_id", "sku"])
        .collect()
    )


def association_rules(baskets: pl.DataFrame, *, item: str, limits: RuleLimits) -> pl.DataFrame:
    """Rules antecedent -> consequent over the members' distinct `item`s, strongest first.

    Columns of RULE_SCHEMA; only rules within `limits`, at most `limits.per_item` per
    antecedent, sorted by antecedent, then confidence and lift from the highest.
    """
    # Ranked by their categorical codes: integers sort far faster than the texts.
    distinct = (
        baskets.select("member_id", item=pl.col(item).cast(pl.Categorical))
        .drop_nulls()
        .unique()
        .with_columns(
            row=pl.col("member_id").rank("dense") - 1,
            column=pl.col("item").to_physical().rank("dense") - 1,
        )
    )
    if distinct.height == 0:
        return pl.DataFrame(schema=RULE_SCHEMA)
    items = (distinct.group_by("column").agg(pl.col("item").first()).sort("column")["item"]).cast(
        pl.String
    )
    members = int(distinct["row"].max()) + 1  # type: ignore[arg-type]
    incidence = sparse.csr_matrix(
        (
            np.ones(distinct.height, dtype=np.int32),
            (distinct["row"].to_numpy(), distinct["column"].to_numpy()),
        ),
        shape=(members, items.len()),
    )
    together = (incidence.T @ incidence).tocoo()
    buyers = together.diagonal()
    pairs = pl.DataFrame({"a": together.row, "b": together.col, "both": together.data})
    rules = (
        pairs.lazy()
        .filter((pl.col("a") != pl.col("b")) & (pl.col("both") >= limits.min_pair_members))
        .with_columns(buyers_a=pl.lit(buyers).gather("a"), buyers_b=pl.lit(buyers).gather("b"))
        .select(
            antecedent=pl.lit(items).gather("a"),
            consequent=pl.lit(items).gather("b"),
            pair_members=pl.col("both").cast(pl.Int64),
            antecedent_members=pl.col("buyers_a").cast(pl.Int64),
            support=(pl.col("both") / members).round(RULE_DIGITS),
            confidence=(pl.col("both") / pl.col("buyers_a")).round(RULE_DIGITS),
            lift=(
                pl.col("both").cast(pl.Float64)
                * members
                / (pl.col("buyers_a").cast(pl.Float64) * pl.col("buyers_b"))
            ).round(RULE_DIGITS),
        )
        .filter(
            (pl.col("confidence") >= limits.min_confidence) & (pl.col("lift") >= limits.min_lift)
        )
        .sort(
            ["antecedent", "confidence", "lift", "consequent"],
            descending=[False, True, True, False],
        )
        .group_by("antecedent", maintain_order=True)
        .head(limits.per_item)
    )
    return rules.collect().cast(pl.Schema(RULE_SCHEMA))


def recommendations(
    lines: pl.DataFrame, products: pl.DataFrame, favourites: pl.DataFrame, *, limits: RuleLimits
) -> pl.DataFrame:
    """Per purchaser with a recommendation: the columns of RECOMMENDATION_SCHEMA.

    lines: member_id, sku, category (one row per order line); products: sku, and name when
    known (else the sku stands for the name); favourites: member_id, top_categories
    [{category, share}] as `tidings.profiles.preferences.category_preferences` gives them.
    """
    sample = sample_baskets(lines, buyers=favourites["member_id"], members=limits.sample_members)
    shares = (
        favourites.select("member_id", "top_categories")
        .explode("top_categories")
        .unnest("top_categories")
        .drop_nulls("category")
    )
    by_product = _product_picks(lines, sample, shares, limits=limits)
    by_category = _category_picks(
        shares.join(by_product, on="member_id", how="anti"), sample, limits=limits
    )
    picks = pl.concat([by_product, by_category], how="vertical_relaxed")
    return _named(picks, products).sort("member_id")


def _product_picks(
    lines: pl.DataFrame, sample: pl.DataFrame, shares: pl.DataFrame, *, limits: RuleLimits
) -> pl.DataFrame:
    """The best consequent of a member's products that they do not buy regularly yet."""
    sku = lines.schema["sku"]
    # Rules and lines meet in the lines' type of sku (categorical in a refresh: small codes).
    rules = (
        association_rules(sample, item="sku", limits=limits)
        .lazy()
        .with_columns(pl.col("antecedent", "consequent").cast(sku))
    )
    category_of = sample.group_by("sku").agg(pl.col("category").first())
    category_of = category_of.select(
        consequent=pl.col("sku").cast(sku), category=pl.col("category").cast(pl.String)
    )
    # One pass over the lines: each member's purchases of the products that rules name.
    named = pl.concat([rules.select(sku="antecedent"), rules.select(sku="consequent")]).unique()
    purchases = (
        lines.lazy()
        .select("member_id", "sku")
        .join(named, on="sku", how="semi")
        .group_by("member_id", "sku")
        .agg(pl.len().alias("purchases"))
        .collect()
        .lazy()
    )
    held = purchases.select("member_id", antecedent="sku")
    regular = purchases.filter(pl.col("purchases") >= limits.regular_purchases).select(
        "member_id", consequent="sku"
    )
    candidates = (
        held.join(rules, on="antecedent")
        .join(regular, on=["member_id", "consequent"], how="anti")
        .join(category_of.lazy(), on="consequent", how="left")
        .join(
            shares.lazy().select("member_id", "category", "share"),
            on=["member_id", "category"],
            how="left",
        )
        .with_columns(score=pl.col("confidence") * (1.0 + pl.col("share").fill_null(0.0)))
    )
    best = _best_per_member(candidates)
    return _picked(best, sku="consequent", category="category", basis="product")


def _category_picks(
    shares: pl.DataFrame, sample: pl.DataFrame, *, limits: RuleLimits
) -> pl.DataFrame:
    """The category members' favourites point to most strongly, not among them yet, and
    its best-selling product."""
    rules = association_rules(sample, item="category", limits=limits)
    best_sellers = (
        sample.drop_nulls("category")
        .group_by("category", "sku")
        .agg(pl.len().alias("buyers"))
        .sort(["category", "buyers", "sku"], descending=[False, True, False])
        .group_by("category", maintain_order=True)
        .first()
        .select(consequent=pl.col("category").cast(pl.String), sku=pl.col("sku").cast(pl.String))
    )
    candidates = (
        shares.lazy()
        .select("member_id", antecedent="category")
        .join(rules.lazy(), on="antecedent")
        .join(
            shares.lazy().select("member_id", consequent="category"),
            on=["member_id", "consequent"],
            how="anti",
        )
        .with_columns(score=pl.col("confidence"))
    )
    best = _best_per_member(candidates).join(best_sellers.lazy(), on="consequent")
    return _picked(best, sku="sku", category="consequent", basis="category")


def _best_per_member(candidates: pl.LazyFrame) -> pl.LazyFrame:
    """Each member's highest-scoring candidate (ties: higher lift, then first by name)."""
    return (
        candidates.sort(
            ["member_id", "score", "lift", "consequent", "antecedent"],
            descending=[False, True, True, False, False],
        )
        .group_by("member_id", maintain_order=True)
        .first()
    )


def _picked(best: pl.LazyFrame, *, sku: str, category: str, basis: str) -> pl.DataFrame:
    """The chosen candidates as sku, category, basis, because, confidence and lift."""
    return best.select(
        "member_id",
        sku=pl.col(sku).cast(pl.String),
        category=pl.col(category).cast(pl.String),
        basis=pl.lit(basis),
        because=pl.col("antecedent").cast(pl.String),
        confidence="confidence",
        lift="lift",
    ).collect()


def _named(picks: pl.DataFrame, products: pl.DataFrame) -> pl.DataFrame:
    """The picks with product names (the sku where the catalogue has none) in profile columns."""
    names = products.select(
        pl.col("sku").cast(pl.String),
        name=pl.col("name") if "name" in products.columns else pl.col("sku"),
    ).unique("sku")
    name_of = names.rename({"name": "product"})
    because = names.rename({"sku": "because", "name": "because_name"})
    named = picks.join(name_of, on="sku", how="left").join(because, on="because", how="left")
    product_basis = pl.col("basis") == "product"
    return named.select(
        "member_id",
        recommended_sku="sku",
        recommended_product=pl.coalesce("product", "sku"),
        recommended_category="category",
        recommendation_basis="basis",
        recommendation_because=pl.when(product_basis)
        .then(pl.coalesce("because_name", "because"))
        .otherwise(pl.col("because")),
        recommendation_confidence="confidence",
        recommendation_lift="lift",
    ).cast(pl.Schema(RECOMMENDATION_SCHEMA))
