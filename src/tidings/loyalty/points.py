"""The points ledger's arithmetic over Polars frames: what orders earn, which lots a
redemption draws (the ones that expire first), what expires, and what expires soon.

Nothing here touches the store; `tidings.loyalty.service` reads and writes the frames.
Every function works on many members at once: there is no Python loop per member.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from tidings.loyalty.models import LotKind

UTC_TIME = pl.Datetime("us", "UTC")
DEFAULT_TIER = "default"
LOT_COLUMNS = ("member_id", "kind", "points", "remaining", "order_id", "occurred_at", "expires_at")


class PointsSettingError(ValueError):
    """A points setting cannot be read (the message says what to write instead)."""


def parse_rates(text: str, *, setting: str = "TIDINGS_POINTS_PER_YUAN") -> dict[str, float]:
    """Reads `default=1;gold=2` into {tier: points per yuan}; 'default' is always present."""
    rates: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        tier, equals, value = entry.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not equals or not tier.strip() or rate < 0:
            raise PointsSettingError(
                f"{setting}: '{entry}' is not tier=rate with a rate of 0 or more;"
                " write e.g. default=1;gold=2"
            )
        rates[tier.strip()] = rate
    rates.setdefault(DEFAULT_TIER, 1.0)
    return rates


def rate_of(tier: pl.Expr, rates: dict[str, float]) -> pl.Expr:
    """Each row's points per yuan, from its tier (the default rate for others)."""
    named = {name: rate for name, rate in rates.items() if name != DEFAULT_TIER}
    return tier.replace_strict(
        list(named), list(named.values()), default=rates[DEFAULT_TIER], return_dtype=pl.Float64
    )


def expiry_of(moment: pl.Expr, months: int) -> pl.Expr:
    """When a lot earned at `moment` expires: that many calendar months later."""
    return moment.dt.offset_by(f"{months}mo")


def accrual_lots(
    orders: pl.DataFrame, *, rates: dict[str, float], expiry_months: int
) -> pl.DataFrame:
    """Lots earned by orders (`order_id, member_id, ordered_at, amount_cents, tier`).

    An order earns floor(yuan x its member's tier rate) points; orders earning none make no lot.
    """
    points = pl.col("amount_cents").clip(lower_bound=0) * rate_of(pl.col("tier"), rates) / 100
    return (
        orders.with_columns(points.floor().cast(pl.Int64).alias("points"))
        .filter(pl.col("points") > 0)
        .select(
            "member_id",
            pl.lit(LotKind.ACCRUAL.value).alias("kind"),
            "points",
            pl.col("points").alias("remaining"),
            pl.col("order_id").cast(pl.Int64),
            pl.col("ordered_at").cast(UTC_TIME).alias("occurred_at"),
            expiry_of(pl.col("ordered_at").cast(UTC_TIME), expiry_months).alias("expires_at"),
        )
    )


def opening_lots(members: pl.DataFrame, *, now: datetime, expiry_months: int) -> pl.DataFrame:
    """One OPENING lot per member (`member_id, points`) with a positive imported balance."""
    moment = pl.lit(now, dtype=UTC_TIME)
    return members.filter(pl.col("points") > 0).select(
        "member_id",
        pl.lit(LotKind.OPENING.value).alias("kind"),
        pl.col("points").cast(pl.Int64),
        pl.col("points").cast(pl.Int64).alias("remaining"),
        pl.lit(None, dtype=pl.Int64).alias("order_id"),
        moment.alias("occurred_at"),
        expiry_of(moment, expiry_months).alias("expires_at"),
    )


def adjustments(
    imported: pl.DataFrame, balances: pl.DataFrame, *, now: datetime, expiry_months: int
) -> pl.DataFrame:
    """ADJUSTMENT entries taking each member's ledger `balance` to the `points` a member file
    gave (below zero counts as zero): a lot when points are added, a spend when taken."""
    moment = pl.lit(now, dtype=UTC_TIME)
    change = pl.col("points").clip(lower_bound=0) - pl.col("balance").fill_null(0)
    return (
        imported.join(balances, on="member_id", how="left")
        .with_columns(change.alias("points"))
        .filter(pl.col("points") != 0)
        .select(
            "member_id",
            pl.lit(LotKind.ADJUSTMENT.value).alias("kind"),
            "points",
            pl.col("points").clip(lower_bound=0).alias("remaining"),
            pl.lit(None, dtype=pl.Int64).alias("order_id"),
            moment.alias("occurred_at"),
            pl.when(pl.col("points") > 0)
            .then(expiry_of(moment, expiry_months))
            .alias("expires_at"),
        )
    )


def draw_lots(lots: pl.DataFrame, wanted: pl.DataFrame) -> pl.DataFrame:
    """Which lots pay for each member's `points` (`wanted`: member_id, points), the lots
    that expire first (then the oldest) first. `lots`: id, member_id, remaining, expires_at.

    Returns `id, member_id, drawn` for each lot drawn; a member whose lots hold less than
    wanted draws all of them (the caller checks the balance first).
    """
    ordered = lots.filter(pl.col("remaining") > 0).sort(
        "member_id", "expires_at", "id", nulls_last=True
    )
    before = pl.col("remaining").cum_sum().over("member_id") - pl.col("remaining")
    return (
        ordered.join(wanted.select("member_id", pl.col("points").alias("_wanted")), on="member_id")
        .with_columns(
            pl.min_horizontal(pl.col("_wanted") - before, pl.col("remaining"))
            .clip(lower_bound=0)
            .alias("drawn")
        )
        .filter(pl.col("drawn") > 0)
        .select("id", "member_id", "drawn")
    )


def expired_totals(lots: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """Per member, the points left in lots past their date (`member_id, points, lots`)."""
    past = lots.filter((pl.col("remaining") > 0) & (pl.col("expires_at") <= now))
    return (
        past.group_by("member_id")
        .agg(pl.col("remaining").sum().alias("points"), pl.len().alias("lots"))
        .sort("member_id")
    )


def expiry_entries(totals: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """One EXPIRY entry per member of `expired_totals`, taking those points off."""
    return totals.select(
        "member_id",
        pl.lit(LotKind.EXPIRY.value).alias("kind"),
        (-pl.col("points")).alias("points"),
        pl.lit(0, dtype=pl.Int64).alias("remaining"),
        pl.lit(None, dtype=pl.Int64).alias("order_id"),
        pl.lit(now, dtype=UTC_TIME).alias("occurred_at"),
        pl.lit(None, dtype=UTC_TIME).alias("expires_at"),
    )


def expiring_soon(lots: pl.DataFrame, *, now: datetime, days: int, timezone: str) -> pl.DataFrame:
    """Per member, the points of live lots (`member_id, remaining, expires_at`) that expire
    within `days`, and the first local date among them:
    `member_id, points_expiring, points_expiry_date`."""
    horizon = now + timedelta(days=days)
    soon = lots.filter(
        (pl.col("remaining") > 0) & (pl.col("expires_at") > now) & (pl.col("expires_at") <= horizon)
    )
    return soon.group_by("member_id").agg(
        pl.col("remaining").sum().cast(pl.Int64).alias("points_expiring"),
        pl.col("expires_at")
        .min()
        .dt.convert_time_zone(timezone)
        .dt.date()
        .alias("points_expiry_date"),
    )


def local_date(moment: datetime, timezone: str) -> date:
    """The date of `moment` in the brand's timezone."""
    return moment.astimezone(ZoneInfo(timezone)).date()
