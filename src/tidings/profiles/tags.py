"""Member tags: computed from the profile, typed in by hand (members.tags), or given by the
operator's tag rules written in the segment language.

Computed tags (Chinese, as operators read them):
    高价值    value group 价值型, or RFM segment Champions
    潜力客户  value group 潜力型
    沉睡客户  value group 沉睡型 (no order in a year)
    新客      lifecycle stage new
    流失风险  churn risk (P(active) under the threshold)
    价格敏感  at least half of at least 3 lines bought on discount (both configurable)
    待补货    expected to run out of a consumable within 7 days (or lately ran out)
    <品类>爱好者  top category holds at least half of the spend, over at least 3 orders
A member's tags are their manual tags, then computed tags, then rule tags, each once.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from tidings.profiles.rfm import POTENTIAL, SLEEPING, VALUABLE
from tidings.profiles.thresholds import ProfileThresholds

COMPUTED_TAGS = ("高价值", "潜力客户", "沉睡客户", "新客", "流失风险", "价格敏感", "待补货")
FAN_SUFFIX = "爱好者"


def computed_tags_expr(thresholds: ProfileThresholds, *, as_of: date) -> pl.Expr:
    """The computed tags of each profile row, as a list of text."""
    flags = [pl.when(condition).then(pl.lit(tag)) for condition, tag in _rules(thresholds, as_of)]
    return pl.concat_list([*flags, _fan(thresholds)]).list.drop_nulls()


def with_computed_tags(
    profiles: pl.DataFrame, thresholds: ProfileThresholds, *, as_of: date, name: str
) -> pl.DataFrame:
    """`profiles` with column `name`: `computed_tags_expr`'s lists, built once per distinct
    combination of tags (a few hundred at most) and looked up for every profile, since
    building a list per row from each rule's text took seconds for a million members."""
    rules = _rules(thresholds, as_of)
    bits = [condition.cast(pl.Int32) * (1 << n) for n, (condition, _) in enumerate(rules)]
    keyed = profiles.with_columns(_tag_bits=pl.sum_horizontal(bits), _fan=_fan(thresholds))
    combinations = keyed.select("_tag_bits", "_fan").unique()
    flags = [
        pl.when((pl.col("_tag_bits") & (1 << n)) != 0).then(pl.lit(tag))
        for n, (_, tag) in enumerate(rules)
    ]
    lists = combinations.with_columns(
        pl.concat_list([*flags, pl.col("_fan")]).list.drop_nulls().alias(name)
    )
    return keyed.join(
        lists, on=["_tag_bits", "_fan"], how="left", nulls_equal=True, maintain_order="left"
    ).drop("_tag_bits", "_fan")


def _rules(thresholds: ProfileThresholds, as_of: date) -> list[tuple[pl.Expr, str]]:
    """Each computed tag (but the fan's) with the condition giving it (null counts as no)."""
    t = thresholds
    restock_by = as_of + timedelta(days=t.restock_within_days)
    rules: list[tuple[pl.Expr, str]] = [
        (
            (pl.col("value_group") == VALUABLE) | (pl.col("rfm_segment") == "Champions"),
            "高价值",
        ),
        (pl.col("value_group") == POTENTIAL, "潜力客户"),
        (pl.col("value_group") == SLEEPING, "沉睡客户"),
        (pl.col("lifecycle_stage") == "new", "新客"),
        (pl.col("churn_risk"), "流失风险"),
        (
            (pl.col("discount_share") >= t.price_sensitive_share)
            & (pl.col("lines") >= t.price_sensitive_min_lines),
            "价格敏感",
        ),
        (pl.col("next_run_out_on") <= restock_by, "待补货"),
    ]
    return [(condition.fill_null(False), tag) for condition, tag in rules]


def _fan(thresholds: ProfileThresholds) -> pl.Expr:
    t = thresholds
    return pl.when(
        (pl.col("top_share") >= t.fan_min_share) & (pl.col("orders_total") >= t.fan_min_orders)
    ).then(pl.col("top_category") + FAN_SUFFIX)


def rule_tags_expr(matches: list[tuple[str, pl.Series]]) -> pl.Expr:
    """The tags of the operator's rules each member matches (`matches`: name, member ids)."""
    if not matches:
        return pl.lit([], dtype=pl.List(pl.String))
    flags = [
        pl.when(pl.col("member_id").is_in(ids.implode())).then(pl.lit(name))
        for name, ids in matches
    ]
    return pl.concat_list(flags).list.drop_nulls()


def merged_tags(*lists: pl.Expr) -> pl.Expr:
    """The given tag lists joined in order, each tag once."""
    joined = pl.concat_list(
        [tags.fill_null(pl.lit([], dtype=pl.List(pl.String))) for tags in lists]
    )
    return joined.list.unique(maintain_order=True)
