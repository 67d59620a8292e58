"""Recency, frequency and money: order counts and spend per window, RFM scores and segments,
value groups (价值型, 潜力型, 沉睡型), tiers and lifecycle stages, all as Polars expressions.

Days are local days of the brand's timezone; `days_ago` is as-of minus the order's day (0 for
an order on the as-of day). "In the last N days" means `days_ago < N` (N calendar days ending
on the as-of day), so "no order in N days" is `days_since_last_order >= N`.

Scores. R, F and M are quintile scores from 1 to 5 among members with at least one order:
R ranks recency (fewest days since the last order = 5), F the number of orders ever, M the
spend ever. A value's score is ceil(5 * rank / n), where rank is the *average* rank of the
value among the n purchasers (ascending, with recency ranked on minus the days). Members with
equal values therefore always share a score, placed where the middle of their tie group
falls, and nothing depends on row order.

Segments follow the widely used R-versus-FM grid, FM being the mean of F and M rounded half
up ((F + M + 1) // 2):

    R \\ FM   1               2                   3                   4          5
    5        New             Potential loyalist  Potential loyalist  Champions  Champions
    4        Promising       Potential loyalist  Potential loyalist  Loyal      Loyal
    3        About to sleep  About to sleep      Need attention      Loyal      Loyal
    2        Hibernating     Hibernating         At risk             At risk    Cannot lose
    1        Lost            Lost                At risk             At risk    Cannot lose
"""

from __future__ import annotations

from datetime import date

import polars as pl

from tidings.profiles.thresholds import ProfileThresholds

RFM_SEGMENTS = (
    "Champions",
    "Loyal",
    "Potential loyalist",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Cannot lose",
    "Hibernating",
    "Lost",
)
VALUABLE, POTENTIAL, SLEEPING = "价值型", "潜力型", "沉睡型"
TIERS = ("bronze", "silver", "gold")
STAGES = ("new", "active", "dormant", "lapsed", "never")
QUINTILES = 5


def dated_orders(orders: pl.DataFrame, *, as_of: date, timezone: str) -> pl.DataFrame:
    """Orders on or before the as-of day, with their local `day` and `days_ago`."""
    return (
        orders.lazy()
        .with_columns(day=pl.col("ordered_at").dt.convert_time_zone(timezone).dt.date())
        .filter(pl.col("day") <= as_of)
        .with_columns(days_ago=(pl.lit(as_of) - pl.col("day")).dt.total_days().cast(pl.Int32))
        .collect()
    )


def _window(days: int, name: str) -> list[pl.Expr]:
    inside = pl.col("days_ago") < days
    return [
        inside.sum().cast(pl.Int64).alias(f"orders_{name}"),
        pl.col("amount_cents").filter(inside).sum().cast(pl.Int64).alias(f"spend_{name}_cents"),
    ]


def order_summary(dated: pl.DataFrame, *, thresholds: ProfileThresholds) -> pl.DataFrame:
    """Per member: first and last order, days since them, and orders and spend per window."""
    t = thresholds
    return dated.group_by("member_id").agg(
        pl.col("ordered_at").min().alias("first_order_at"),
        pl.col("ordered_at").max().alias("last_order_at"),
        pl.col("days_ago").min().cast(pl.Int64).alias("days_since_last_order"),
        pl.col("days_ago").max().cast(pl.Int64).alias("days_since_first_order"),
        pl.len().cast(pl.Int64).alias("orders_total"),
        pl.col("amount_cents").sum().cast(pl.Int64).alias("spend_total_cents"),
        *_window(t.short_window_days, "90d"),
        *_window(t.long_window_days, "365d"),
        *_window(t.valuable_window_days, "valuable"),
        *_window(t.potential_window_days, "potential"),
        *_window(t.tier_window_days, "tier"),
    )


def _quintile(column: str, *, descending: bool = False) -> pl.Expr:
    value = -pl.col(column) if descending else pl.col(column)
    rank = value.rank(method="average")
    count = pl.col(column).count()
    return (rank * QUINTILES / count).ceil().clip(1, QUINTILES).cast(pl.Int64)


def rfm_scores(summary: pl.DataFrame) -> pl.DataFrame:
    """Adds `r_score`, `f_score`, `m_score` and `rfm_segment` to purchasers' summaries."""
    scored = summary.with_columns(
        _quintile("days_since_last_order", descending=True).alias("r_score"),
        _quintile("orders_total").alias("f_score"),
        _quintile("spend_total_cents").alias("m_score"),
    )
    return scored.with_columns(rfm_segment_expr().alias("rfm_segment"))


def rfm_segment_expr() -> pl.Expr:
    """The segment of the R-versus-FM grid in this module's docstring."""
    r = pl.col("r_score")
    fm = (pl.col("f_score") + pl.col("m_score") + 1) // 2
    grid: list[tuple[pl.Expr, str]] = [
        ((r == 5) & (fm >= 4), "Champions"),
        ((r >= 3) & (fm >= 4), "Loyal"),
        ((r == 5) & (fm == 1), "New"),
        ((r == 4) & (fm == 1), "Promising"),
        ((r >= 4) & (fm <= 3), "Potential loyalist"),
        ((r == 3) & (fm == 3), "Need attention"),
        (r == 3, "About to sleep"),
        ((r <= 2) & (fm == 5), "Cannot lose"),
        ((r <= 2) & (fm >= 3), "At risk"),
        (r == 2, "Hibernating"),
        (r == 1, "Lost"),
    ]
    expression: pl.Expr = pl.lit(None, dtype=pl.String)
    for condition, name in reversed(grid):
        expression = pl.when(condition).then(pl.lit(name)).otherwise(expression)
    return expression


def _average_at_least(orders: str, spend: str, cents: int) -> pl.Expr:
    # Compared as spend >= cents * orders so that 499.99 yuan never rounds up to 500.
    return pl.col(spend) >= pl.col(orders) * cents


def value_group_expr(thresholds: ProfileThresholds) -> pl.Expr:
    """价值型, 潜力型 or 沉睡型 (null for the rest and for members who never bought)."""
    t = thresholds
    valuable = (pl.col("orders_valuable") >= t.valuable_min_orders) & _average_at_least(
        "orders_valuable", "spend_valuable_cents", t.valuable_min_avg_cents
    )
    potential = (
        (pl.col("orders_potential") >= t.potential_min_orders)
        & _average_at_least("orders_potential", "spend_potential_cents", t.potential_min_avg_cents)
        & ~_average_at_least("orders_potential", "spend_potential_cents", t.potential_max_avg_cents)
    )
    sleeping = pl.col("days_since_last_order") >= t.sleeping_after_days
    return (
        pl.when(valuable)
        .then(pl.lit(VALUABLE))
        .when(potential)
        .then(pl.lit(POTENTIAL))
        .when(sleeping)
        .then(pl.lit(SLEEPING))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def computed_tier_expr(thresholds: ProfileThresholds) -> pl.Expr:
    """bronze, silver or gold by spend over the tier window (every member has a tier)."""
    spend = pl.col("spend_tier_cents").fill_null(0)
    return (
        pl.when(spend >= thresholds.gold_min_cents)
        .then(pl.lit("gold"))
        .when(spend >= thresholds.silver_min_cents)
        .then(pl.lit("silver"))
        .otherwise(pl.lit("bronze"))
    )


def lifecycle_stage_expr(thresholds: ProfileThresholds) -> pl.Expr:
    """new (first order at most N days ago), active, dormant, lapsed, or never (no order)."""
    t = thresholds
    since_last = pl.col("days_since_last_order")
    return (
        pl.when(pl.col("orders_total").fill_null(0) == 0)
        .then(pl.lit("never"))
        .when(pl.col("days_since_first_order") <= t.new_within_days)
        .then(pl.lit("new"))
        .when(since_last >= t.lapsed_after_days)
        .then(pl.lit("lapsed"))
        .when(since_last >= t.dormant_after_days)
        .then(pl.lit("dormant"))
        .otherwise(pl.lit("active"))
    )
