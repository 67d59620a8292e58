"""The profile of every member, computed from frames alone: members, orders, lines, products,
the previous profiles and the fitted purchase models in; one profile row per member out.

Nothing here touches the store, so it is quick to test with hand-made frames. Every step is a
Polars expression or a numpy array operation over all members at once.

Tiers: the tier written to profiles is the one computed from trailing-quarter spend, so that
`tier` always means bronze/silver/gold by the same rule in segments and messages. The POS's
own tier stays on members.tier, untouched. A brand whose POS runs the tiers sets
`tier_from_pos`; then a POS tier that names one of bronze/silver/gold wins, and the computed
tier fills in for members without one.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from tidings.profiles import bgnbd, copurchase, preferences, replenish, rfm, sendtime, tags
from tidings.profiles.bgnbd import BgNbdParams, GammaGammaParams
from tidings.profiles.thresholds import ProfileThresholds

WEEKS_PER_YEAR = 52.0  # CLV horizon: 12 months, undiscounted (a year is too short to matter)
DAYS_PER_WEEK = 7.0
CENTS_PER_YUAN = 100.0
LINE_PART_THREADS = 2  # the lines' two independent parts, beside the orders' parts

PROFILE_COLUMNS = (
    "member_id",
    "as_of",
    "first_order_at",
    "last_order_at",
    "days_since_last_order",
    "orders_total",
    "spend_total_cents",
    "orders_90d",
    "spend_90d_cents",
    "orders_365d",
    "spend_365d_cents",
    "avg_order_cents",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "value_group",
    "tier",
    "previous_tier",
    "tier_changed_at",
    "lifecycle_stage",
    "top_category",
    "top_categories",
    "discount_share",
    "main_store_id",
    "main_store_share",
    "best_hour",
    "next_run_out_on",
    "replenishment",
    "p_alive",
    "expected_orders_90d",
    "expected_aov_cents",
    "clv_12m_cents",
    "churn_risk",
    "tags",
    *copurchase.RECOMMENDATION_COLUMNS,
)


@dataclass(frozen=True)
class PurchaseModels:
    """The fitted models a refresh predicts with (None: not fitted, predictions left empty)."""

    bgnbd: BgNbdParams | None = None
    gamma_gamma: GammaGammaParams | None = None


def end_of_day(as_of: date, timezone: str) -> datetime:
    """The UTC instant the as-of day ends in `timezone` (orders before it count)."""
    midnight = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=ZoneInfo(timezone))
    return midnight.astimezone(UTC)


def compute_profiles(
    *,
    members: pl.DataFrame,
    orders: pl.DataFrame,
    lines: pl.DataFrame,
    products: pl.DataFrame,
    previous: pl.DataFrame,
    models: PurchaseModels | Callable[[], PurchaseModels],
    as_of: date,
    thresholds: ProfileThresholds,
    timezone: str,
    send_window: str,
) -> pl.DataFrame:
    """One profile per member of `members`, sorted by member id, with manual and computed tags.

    members: member_id, store_id, tier (the POS's), timezone, tags (list of text);
    orders: as `tidings.orders.frames.orders` loads them; lines: order lines with at least
    order_id, sku, category, quantity, amount_cents, discounted (their member and time are
    their order's); products: sku, pack_size_days, and name when known;
    previous: member_id, tier, previous_tier, tier_changed_at (the last refresh's profiles);
    models: the models to predict with, or a call that waits for them (a fit running beside:
    only the predictions need it, and they are made last).
    """
    t = thresholds
    # Sorted by member once: every grouping of the orders by member below then walks runs of
    # rows instead of hashing 3 million keys (about a third of the CPU of each).
    dated = rfm.dated_orders(orders, as_of=as_of, timezone=timezone).sort("member_id")
    parts, hours = _parts(
        members,
        dated,
        _dated_lines(lines, dated),
        products,
        previous,
        models=models,
        as_of=as_of,
        thresholds=t,
        timezone=timezone,
    )
    joined = members.select("member_id", "store_id", pos_tier="tier", manual_tags="tags").sort(
        "member_id"
    )
    for part in parts:
        # Both sides sorted by member (most parts come so): the join walks them in step.
        joined = joined.join(
            part.sort("member_id"), on="member_id", how="left", maintain_order="left"
        )
    leaning = joined.select("member_id", store_id=pl.coalesce("main_store_id", "store_id"))
    best_hour = sendtime.best_hours(
        members=leaning,
        orders=hours,
        send_window=send_window,
        member_pseudo_orders=t.member_pseudo_orders,
        store_pseudo_orders=t.store_pseudo_orders,
        fallback_hour=t.fallback_send_hour,
    )
    profiles = _finish(joined.with_columns(best_hour), as_of=as_of, thresholds=t)
    computed = tags.with_computed_tags(profiles, t, as_of=as_of, name="computed_tags")
    return computed.with_columns(
        tags=tags.merged_tags(pl.col("manual_tags"), pl.col("computed_tags"))
    ).select(PROFILE_COLUMNS)


def _parts(
    members: pl.DataFrame,
    dated: pl.DataFrame,
    dated_lines: pl.DataFrame,
    products: pl.DataFrame,
    previous: pl.DataFrame,
    *,
    models: PurchaseModels | Callable[[], PurchaseModels],
    as_of: date,
    thresholds: ProfileThresholds,
    timezone: str,
) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """The per-member parts of a profile, to be joined in this order, and the orders' local
    hours (member_id, store_id, hour).

    Much of each part runs on one core (walks of sorted runs, per-group steps) and the parts
    are independent, so the two parts of the lines run on threads beside the orders' parts
    (Polars lets go of the GIL): on two cores compute took about two thirds of the time.
    """
    t = thresholds
    with ThreadPoolExecutor(LINE_PART_THREADS) as threads:
        by_lines = threads.submit(_line_parts, dated_lines, products, thresholds=t)
        replenishment = threads.submit(
            _replenishment, dated_lines, products, as_of=as_of, thresholds=t
        )
        summary = rfm.rfm_scores(rfm.order_summary(dated, thresholds=t))
        stores = preferences.main_stores(dated)
        hours = sendtime.local_hours(
            dated.select("member_id", "store_id", "ordered_at"),
            timezones=members.select("member_id", "timezone"),
            default=timezone,
        )
        fitted = models if isinstance(models, PurchaseModels) else models()
        predicted = predictions(dated, models=fitted, as_of=as_of, thresholds=t)
        favourites, discounts, recommended = by_lines.result()
        parts = [
            summary,
            favourites,
            discounts,
            stores,
            replenishment.result(),
            recommended,
            predicted,
            _previous(previous),
        ]
    return parts, hours.select("member_id", "store_id", "hour")


# Lines find their order by position among the order ids unless the ids spread wider than
# this many per dated order, beyond a first million (12 bytes each): then they are joined.
ORDER_SLOTS_PER_ORDER = 4
ORDER_SLOTS_FREE = 1_000_000


def _dated_lines(lines: pl.DataFrame, dated: pl.DataFrame) -> pl.DataFrame:
    """The lines of orders up to the as-of day, with their order's member and local day.

    Taken from the orders already dated, so the 10-times-larger line frame is neither
    converted to local time nor filtered by time itself. Categorical sku and category: the
    groupings downstream then hash small integers.
    """
    selected = lines.lazy().select(
        "order_id",
        "amount_cents",
        "quantity",
        "discounted",
        sku=pl.col("sku").cast(pl.Categorical),
        category=pl.col("category").cast(pl.Categorical),
    )
    low, high = dated.select(low=pl.col("order_id").min(), high=pl.col("order_id").max()).row(0)
    if low is None or high - low >= ORDER_SLOTS_PER_ORDER * dated.height + ORDER_SLOTS_FREE:
        heads = dated.lazy().select("order_id", "member_id", "day")
        return selected.join(heads, on="order_id", how="inner").collect()
    # Order ids are mostly dense: each line looks its order up by position in arrays
    # indexed by order id (null where no dated order has that id), half the CPU of a join.
    size = high - low + 1
    slots = dated["order_id"] - low
    member = pl.repeat(None, size, dtype=pl.Int64, eager=True).scatter(slots, dated["member_id"])
    day = pl.repeat(None, size, dtype=pl.Date, eager=True).scatter(slots, dated["day"])
    slot = pl.col("order_id") - low
    return (
        selected.filter(slot.is_between(0, size - 1))
        .with_columns(member_id=pl.lit(member).gather(slot), day=pl.lit(day).gather(slot))
        .filter(pl.col("member_id").is_not_null())
        .collect()
    )


def _line_parts(
    dated_lines: pl.DataFrame, products: pl.DataFrame, *, thresholds: ProfileThresholds
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Favourite categories, discount shares and recommendations (which need the favourites)."""
    favourites, discounts = preferences.line_preferences(dated_lines, top=thresholds.top_categories)
    recommended = copurchase.recommendations(
        dated_lines, products, favourites, limits=copurchase.limits_from(thresholds)
    )
    return favourites, discounts, recommended


def _replenishment(
    dated_lines: pl.DataFrame, products: pl.DataFrame, *, as_of: date, thresholds: ProfileThresholds
) -> pl.DataFrame:
    return replenish.replenishment(
        dated_lines,
        products,
        as_of=as_of,
        min_purchases=thresholds.cadence_min_purchases,
        forget_after_days=thresholds.replenish_forget_after_days,
        max_items=thresholds.replenish_items,
    )


def _previous(previous: pl.DataFrame) -> pl.DataFrame:
    return previous.select(
        "member_id",
        old_tier="tier",
        old_previous_tier="previous_tier",
        old_tier_changed_at="tier_changed_at",
    )


def _finish(joined: pl.DataFrame, *, as_of: date, thresholds: ProfileThresholds) -> pl.DataFrame:
    """Fills never-buyers' counts and adds value group, tier and its history, lifecycle stage."""
    counts = [
        "orders_total",
        "spend_total_cents",
        "orders_90d",
        "spend_90d_cents",
        "orders_365d",
        "spend_365d_cents",
        "lines",
    ]
    filled = joined.with_columns(pl.col(counts).fill_null(0), as_of=pl.lit(as_of))
    tier = rfm.computed_tier_expr(thresholds)
    if thresholds.tier_from_pos:
        pos = pl.col("pos_tier").str.to_lowercase()
        tier = pl.when(pos.is_in(rfm.TIERS)).then(pos).otherwise(tier)
    staged = filled.with_columns(
        value_group=rfm.value_group_expr(thresholds),
        tier=tier,
        lifecycle_stage=rfm.lifecycle_stage_expr(thresholds),
        avg_order_cents=pl.when(pl.col("orders_total") > 0).then(
            (pl.col("spend_total_cents") / pl.col("orders_total")).round(0).cast(pl.Int64)
        ),
        churn_risk=pl.col("churn_risk").fill_null(False),
    )
    changed = pl.col("old_tier").is_not_null() & (pl.col("old_tier") != pl.col("tier"))
    return staged.with_columns(
        previous_tier=pl.when(changed)
        .then(pl.col("old_tier"))
        .otherwise(pl.col("old_previous_tier")),
        tier_changed_at=pl.when(changed)
        .then(pl.lit(as_of))
        .otherwise(pl.col("old_tier_changed_at")),
    )


def predictions(
    dated: pl.DataFrame, *, models: PurchaseModels, as_of: date, thresholds: ProfileThresholds
) -> pl.DataFrame:
    """Per purchaser: P(alive), expected orders in 90 days, expected AOV, 12-month CLV, churn.

    Predictions are per purchase day (several orders on one day count once), as the models
    are fitted. CLV = expected purchase days in 52 weeks x expected spend per day, not
    discounted. Without a fitted BG/NBD the columns stay empty.
    """
    summary = bgnbd.purchase_day_summary(dated, calibration_end=as_of)
    if models.bgnbd is None or summary.height == 0:
        return summary.select(
            "member_id",
            p_alive=pl.lit(None, dtype=pl.Float64),
            expected_orders_90d=pl.lit(None, dtype=pl.Float64),
            expected_aov_cents=pl.lit(None, dtype=pl.Int64),
            clv_12m_cents=pl.lit(None, dtype=pl.Int64),
            churn_risk=pl.lit(None, dtype=pl.Boolean),
        )
    distinct = summary.select("x", "t_x", "T").unique()
    x, t_x, T = (distinct[name].to_numpy() for name in ("x", "t_x", "T"))
    params = models.bgnbd
    distinct = distinct.with_columns(
        p_alive=pl.Series(bgnbd.p_alive(params, x, t_x, T)),
        expected_orders_90d=pl.Series(
            bgnbd.expected_purchases(params, 90 / DAYS_PER_WEEK, x, t_x, T)
        ),
        expected_year=pl.Series(bgnbd.expected_purchases(params, WEEKS_PER_YEAR, x, t_x, T)),
    )
    scored = summary.join(distinct, on=["x", "t_x", "T"], how="left").sort("member_id")
    aov = _expected_spend_cents(scored, models.gamma_gamma)
    return scored.select(
        "member_id",
        "p_alive",
        "expected_orders_90d",
        expected_aov_cents=pl.Series(np.round(aov)).cast(pl.Int64),
        clv_12m_cents=pl.Series(np.round(aov * scored["expected_year"].to_numpy())).cast(pl.Int64),
        churn_risk=pl.col("p_alive") < thresholds.churn_below_p_alive,
    )


def _expected_spend_cents(scored: pl.DataFrame, gamma_gamma: GammaGammaParams | None) -> np.ndarray:
    """Gamma-Gamma's expected spend per purchase day (fitted in yuan), else the member's mean."""
    observed = (scored["total"] / scored["days"]).to_numpy()
    if gamma_gamma is None:
        return observed
    x = scored["x"].to_numpy()
    m = scored["m"].fill_null(0.0).to_numpy() / CENTS_PER_YUAN
    spend = bgnbd.expected_spend(gamma_gamma, x, m) * CENTS_PER_YUAN
    return np.where(np.isfinite(spend), spend, observed)
