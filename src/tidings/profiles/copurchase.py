"""What each member may buy next: association rules mined from the whole base's purchases
(pairs of products and pairs of categories, with support, confidence and lift), weighed by
the member's category affinity, each with its reason in words.

A member's basket is the set of products they bought up to the as-of day. A rule A -> B
says how many of the members who buy A also buy B: support is the share of all members who
buy both, confidence the share of A's buyers who also buy B, lift the confidence over B's
share of all members (above 1: buying A makes B more likely). Rules are mined on a fixed
sample of purchasers, since a share measured over 100,000 members is as good as over a
million, and applied to every member with joins: no loop per member or per order.

A member is offered the product that scores best among the consequents of the products they
bought, leaving out products they already buy regularly: score = confidence x (1 + the
member's share of spend in the product's category). A member whose products lead nowhere
gets the best-selling product of the category their categories point to most strongly, one
they have not bought from yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

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
BASES = tuple(REASONS)
RULE_DIGITS = 4
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
    min_lift: float = 1.2  # B at least this much likelier among A's buyers than among all
    per_item: int = 5  # strongest consequents kept per antecedent
    sample_members: int = 100_000  # purchasers the rules are mined on
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


def member_products(lines: pl.DataFrame) -> pl.DataFrame:
    """Per member and product: its category, purchases (lines) and spend (returns count 0)."""
    return (
        lines.lazy()
        .filter(pl.col("sku").is_not_null())
        .group_by("member_id", "sku")
        .agg(
            pl.col("category").first(),
            purchases=pl.len(),
            spend=pl.col("amount_cents").clip(0, None).sum(),
        )
        .collect()
    )


def sample_baskets(owned: pl.DataFrame, *, members: int, seed: int = 0) -> pl.DataFrame:
    """The rows of `owned` of at most `members` purchasers, a fixed random sample of them."""
    buyers = owned.select(pl.col("member_id").unique().sort())
    if buyers.height <= members:
        return owned
    chosen = buyers.sample(members, seed=seed)
    return owned.join(chosen, on="member_id", how="semi")


def association_rules(baskets: pl.DataFrame, *, item: str, limits: RuleLimits) -> pl.DataFrame:
    """Rules antecedent -> consequent over the members' distinct `item`s, strongest first.

    Columns: antecedent, consequent, pair_members (buy both), antecedent_members, support,
    confidence, lift; only rules within `limits`, at most `limits.per_item` per antecedent.
    """
    distinct = baskets.lazy().select("member_id", item).unique()
    members = distinct.select(pl.col("member_id").n_unique()).collect().item()
    buyers = distinct.group_by(item).agg(pl.len().alias("buyers"))
    pairs = (
        distinct.join(distinct, on="member_id", suffix="_b")
        .filter(pl.col(item) != pl.col(f"{item}_b"))
        .group_by(item, f"{item}_b")
        .agg(pl.len().alias("pair_members"))
        .filter(pl.col("pair_members") >= limits.min_pair_members)
    )
    rules = (
        pairs.join(buyers, on=item)
        .join(buyers.rename({"buyers": "consequent_members", item: f"{item}_b"}), on=f"{item}_b")
        .select(
            antecedent=pl.col(item),
            consequent=pl.col(f"{item}_b"),
            pair_members="pair_members",
            antecedent_members="buyers",
            support=(pl.col("pair_members") / members).round(RULE_DIGITS),
            confidence=(pl.col("pair_members") / pl.col("buyers")).round(RULE_DIGITS),
            lift=(
                pl.col("pair_members") * members / (pl.col("buyers") * pl.col("consequent_members"))
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
    return rules.collect()


def recommendations(
    lines: pl.DataFrame, products: pl.DataFrame, *, limits: RuleLimits
) -> pl.DataFrame:
    """Per purchaser with a recommendation: the columns of RECOMMENDATION_SCHEMA.

    lines: member_id, sku, category, amount_cents (one row per order line); products: sku,
    and name when known (else the sku stands for the name).
    """
    owned = member_products(lines)
    sample = sample_baskets(owned, members=limits.sample_members)
    by_product = _product_picks(owned, sample, limits=limits)
    categories = owned.group_by("member_id", "category").agg(pl.col("spend").sum())
    by_category = _category_picks(
        categories.join(by_product, on="member_id", how="anti"), sample, limits=limits
    )
    picks = pl.concat([by_product, by_category], how="vertical_relaxed")
    return _named(picks, products).sort("member_id")


def _product_picks(
    owned: pl.DataFrame, sample: pl.DataFrame, *, limits: RuleLimits
) -> pl.DataFrame:
    """The best consequent of a member's products that they do not buy regularly yet."""
    rules = association_rules(sample, item="sku", limits=limits)
    category_of = sample.group_by("sku").agg(pl.col("category").first())
    shares = (
        owned.lazy()
        .filter(pl.col("category").is_not_null())
        .group_by("member_id", "category")
        .agg(pl.col("spend").sum())
        .with_columns(share=pl.col("spend") / pl.col("spend").sum().over("member_id"))
        .select("member_id", "category", share=pl.col("share").fill_nan(0.0))
    )
    regular = owned.lazy().filter(pl.col("purchases") >= limits.regular_purchases)
    candidates = (
        owned.lazy()
        .select("member_id", antecedent="sku")
        .join(rules.lazy(), on="antecedent")
        .join(
            regular.select("member_id", consequent="sku"),
            on=["member_id", "consequent"],
            how="anti",
        )
        .join(category_of.lazy().rename({"sku": "consequent"}), on="consequent", how="left")
        .join(shares, on=["member_id", "category"], how="left")
        .with_columns(score=pl.col("confidence") * (1.0 + pl.col("share").fill_null(0.0)))
    )
    return _picked(
        _best_per_member(candidates), sku="consequent", category="category", basis="product"
    )


def _category_picks(
    categories: pl.DataFrame, sample: pl.DataFrame, *, limits: RuleLimits
) -> pl.DataFrame:
    """For members left without a product: the category their categories point to most,
    one they have not bought from, and its best-selling product."""
    rules = association_rules(
        sample.filter(pl.col("category").is_not_null()), item="category", limits=limits
    )
    best_sellers = (
        sample.group_by("category", "sku")
        .agg(pl.len().alias("buyers"))
        .sort(["category", "buyers", "sku"], descending=[False, True, False])
        .group_by("category", maintain_order=True)
        .first()
        .select(consequent="category", sku="sku")
    )
    candidates = (
        categories.lazy()
        .filter(pl.col("category").is_not_null())
        .select("member_id", antecedent="category")
        .join(rules.lazy(), on="antecedent")
        .join(
            categories.lazy().select("member_id", consequent="category"),
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
