"""Lifecycle occasions from profiles, the points ledger and the holiday calendar. Pure Polars.

Like `tidings.triggers.dates`, each function takes frames and the brand's local day and
returns occasions with keys naming them: the run-out day of a staple, the day points expire,
the tier reached and when, the first day of a public holiday.
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import polars as pl

RUN_OUT = pl.List(pl.Struct({"sku": pl.String, "run_out_on": pl.String}))
TIER_RANK = {"bronze": 1, "silver": 2, "gold": 3}
# chinese-calendar's names of the public holidays, as members read them.
HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午",
    "National Day": "国庆",
    "Mid-autumn Festival": "中秋",
}


def _days_until(column: str, today: date) -> pl.Expr:
    return (pl.col(column) - pl.lit(today)).dt.total_days()


def replenishment_occasions(
    profiles: pl.DataFrame, products: pl.DataFrame, *, today: date, days_before: int
) -> pl.DataFrame:
    """Members whose next run-out (`next_run_out_on`) is 0 to `days_before` days away, naming
    the product (`replenishment` JSON: sku and run_out_on per staple; `products`: sku, name)."""
    due = profiles.filter(_days_until("next_run_out_on", today).is_between(0, days_before))
    items = (
        due.with_columns(pl.col("replenishment").str.json_decode(RUN_OUT))
        .explode("replenishment")
        .unnest("replenishment")
        .filter(pl.col("run_out_on").str.to_date(strict=False) == pl.col("next_run_out_on"))
        .unique("member_id", keep="first", maintain_order=True)
    )
    named = items.join(products, on="sku", how="left").with_columns(
        product=pl.coalesce("product_name", "sku")
    )
    return named.select(
        "member_id",
        "product",
        key=pl.format("replenish:{}", pl.col("next_run_out_on").dt.strftime("%Y%m%d")),
        run_out_on="next_run_out_on",
    )


def points_occasions(expiring: pl.DataFrame) -> pl.DataFrame:
    """One reminder per member and expiry day (`member_id, points_expiring,
    points_expiry_date`, as `tidings.loyalty.points.expiring_soon` gives them)."""
    return expiring.filter(pl.col("points_expiring") > 0).select(
        "member_id",
        "points_expiring",
        "points_expiry_date",
        key=pl.format("points:{}", pl.col("points_expiry_date").dt.strftime("%Y%m%d")),
    )


def tier_up_occasions(profiles: pl.DataFrame, *, today: date, window_days: int) -> pl.DataFrame:
    """Members whose tier went up (`tier` above `previous_tier`) in the last `window_days`
    days (`tier_changed_at`); once per tier reached and day."""
    moved_up = pl.col("tier").replace_strict(TIER_RANK, default=0) > pl.col(
        "previous_tier"
    ).replace_strict(TIER_RANK, default=0)
    recent = (pl.lit(today) - pl.col("tier_changed_at")).dt.total_days().is_between(0, window_days)
    return profiles.filter(moved_up & recent).select(
        "member_id",
        key=pl.format("tier_up:{}:{}", "tier", pl.col("tier_changed_at").dt.strftime("%Y%m%d")),
    )


def tier_loss_occasions(
    orders: pl.DataFrame,
    tiers: pl.DataFrame,
    *,
    today: date,
    days_before: int,
    window_days: int,
    minimums: dict[str, int],
    timezone: str,
) -> pl.DataFrame:
    """Members whose tier lapses 1 to `days_before` days from today if they buy nothing more.

    A tier holds while spend over the trailing `window_days` reaches its minimum (`minimums`:
    tier -> cents); as days pass, orders leave the window. `orders`: member_id, ordered_at
    (UTC), amount_cents; `tiers`: member_id, tier (only tiers named in `minimums`). Gives the
    last day the tier holds (`tier_kept_until`) and what keeps it (`keep_spend_yuan`); the key
    names the tier and that day.
    """
    held = tiers.filter(pl.col("tier").is_in(list(minimums))).with_columns(
        minimum=pl.col("tier").replace_strict(minimums, return_dtype=pl.Int64)
    )
    daily = (
        orders.with_columns(day=pl.col("ordered_at").dt.convert_time_zone(timezone).dt.date())
        .filter((pl.lit(today) - pl.col("day")).dt.total_days().is_between(0, window_days - 1))
        .group_by("member_id", "day")
        .agg(pl.col("amount_cents").sum())
        .join(held, on="member_id", how="inner")
        .sort("member_id", "day", descending=[False, True])
        .with_columns(spent=pl.col("amount_cents").cum_sum().over("member_id"))
    )
    # The oldest order the tier still needs: once it leaves the window, the tier lapses.
    needed = daily.filter(pl.col("spent") >= pl.col("minimum")).unique(
        "member_id", keep="first", maintain_order=True
    )
    lapses = pl.col("day").dt.offset_by(f"{window_days}d")
    after = pl.col("spent") - pl.col("amount_cents")
    soon = (lapses - pl.lit(today)).dt.total_days().is_between(1, days_before)
    return needed.filter(soon).select(
        "member_id",
        key=pl.format("tier_loss:{}:{}", "tier", lapses.dt.strftime("%Y%m%d")),
        tier_kept_until=lapses.dt.offset_by("-1d"),
        keep_spend_yuan=((pl.col("minimum") - after + 99) // 100).cast(pl.Int64),
    )


def next_holiday(today: date, *, days_before: int) -> tuple[str, date] | None:
    """The name and first day of a public holiday starting 1 to `days_before` days from
    today, or None (a few calendar look-ups, not one per member)."""
    for ahead in range(1, days_before + 1):
        day = today + timedelta(days=ahead)
        try:
            on_holiday, name = chinese_calendar.get_holiday_detail(day)
            before, previous = chinese_calendar.get_holiday_detail(day - timedelta(days=1))
        except NotImplementedError:  # beyond the years the calendar knows
            return None
        if on_holiday and name in HOLIDAY_NAMES and not (before and previous == name):
            return HOLIDAY_NAMES[name], day
    return None
