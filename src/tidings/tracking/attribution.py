"""Credits orders to the messages that earned them, over Polars frames: a redeemed coupon of
the message (direct), an order within the click window after a person clicked its link
(click-through), or an order within the view window after it was delivered (view-through).

Each order is credited once: to the most direct kind, then to the most recent message of that
kind. The matching is vectorised (`join_asof` by member, then one sort and `unique`), so a
million orders against a million messages take seconds, not a loop per member.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from tidings.tracking.models import AttributionKind

UTC_TIME = pl.Datetime("us", "UTC")
# Lower is more direct; the most direct credit of an order wins.
RANK: dict[AttributionKind, int] = {
    AttributionKind.COUPON: 0,
    AttributionKind.CLICK: 1,
    AttributionKind.VIEW: 2,
}
ORDERS_SCHEMA: dict[str, pl.DataType] = {
    "order_id": pl.Int64(),
    "member_id": pl.Int64(),
    "ordered_at": UTC_TIME,
    "amount_cents": pl.Int64(),
}
# A message's touch of a member: its delivery, a person's click on its link, or (for
# redemptions) the order its coupon was redeemed on, with the time the message went out.
MESSAGE_COLUMNS: dict[str, pl.DataType] = {
    "message_id": pl.Int64(),
    "campaign_id": pl.Int64(),
    "variant_id": pl.Int64(),
    "trigger_id": pl.Int64(),
}
TOUCHES_SCHEMA: dict[str, pl.DataType] = {
    **MESSAGE_COLUMNS,
    "member_id": pl.Int64(),
    "touched_at": UTC_TIME,
}
REDEMPTIONS_SCHEMA: dict[str, pl.DataType] = {
    **MESSAGE_COLUMNS,
    "order_id": pl.Int64(),
    "touched_at": UTC_TIME,
}
CREDITS_SCHEMA: dict[str, pl.DataType] = {
    "order_id": pl.Int64(),
    **MESSAGE_COLUMNS,
    "member_id": pl.Int64(),
    "kind": pl.String(),
    "rank": pl.Int64(),
    "revenue_cents": pl.Int64(),
    "ordered_at": UTC_TIME,
}


@dataclass(frozen=True)
class Windows:
    """How long after a click, and after a delivery, an order is credited to the message."""

    click: timedelta
    view: timedelta

    @classmethod
    def of_days(cls, *, click_days: int, view_days: int) -> Windows:
        """Builds the windows from whole days, as the settings give them."""
        return cls(click=timedelta(days=click_days), view=timedelta(days=view_days))


def credit_orders(
    orders: pl.DataFrame,
    *,
    redemptions: pl.DataFrame,
    clicks: pl.DataFrame,
    deliveries: pl.DataFrame,
    windows: Windows,
) -> pl.DataFrame:
    """Returns one credit per creditable order (CREDITS_SCHEMA): the most direct, then the
    most recent message. Both window ends are included: an order exactly 3 days after delivery
    is still the message's."""
    orders = orders.select(ORDERS_SCHEMA.keys()).cast(ORDERS_SCHEMA)  # type: ignore[arg-type]
    candidates = [
        _direct(orders, redemptions),
        _within(orders, clicks, windows.click, AttributionKind.CLICK),
        _within(orders, deliveries, windows.view, AttributionKind.VIEW),
    ]
    return (
        pl.concat(candidates, how="vertical")
        .sort(["order_id", "rank", "touched_at"], descending=[False, False, True])
        .unique("order_id", keep="first", maintain_order=True)
        .select(CREDITS_SCHEMA.keys())
    )


def _credit_columns(kind: AttributionKind) -> list[pl.Expr]:
    return [
        pl.lit(kind.value, dtype=pl.String).alias("kind"),
        pl.lit(RANK[kind], dtype=pl.Int64).alias("rank"),
        pl.col("amount_cents").alias("revenue_cents"),
    ]


def _direct(orders: pl.DataFrame, redemptions: pl.DataFrame) -> pl.DataFrame:
    """Orders a coupon of a message was redeemed on."""
    redeemed = redemptions.select(REDEMPTIONS_SCHEMA.keys()).cast(
        REDEMPTIONS_SCHEMA  # type: ignore[arg-type]
    )
    return (
        orders.join(redeemed, on="order_id", how="inner")
        .with_columns(_credit_columns(AttributionKind.COUPON))
        .select([*CREDITS_SCHEMA.keys(), "touched_at"])
    )


def _within(
    orders: pl.DataFrame, touches: pl.DataFrame, window: timedelta, kind: AttributionKind
) -> pl.DataFrame:
    """Each order matched to its member's latest touch at most `window` before it."""
    right = (
        touches.select(TOUCHES_SCHEMA.keys())
        .cast(TOUCHES_SCHEMA)  # type: ignore[arg-type]
        .drop_nulls(["member_id", "touched_at"])
        .sort("touched_at")
    )
    matched = orders.sort("ordered_at").join_asof(
        right,
        left_on="ordered_at",
        right_on="touched_at",
        by="member_id",
        strategy="backward",
        tolerance=window,
        # Both sides are sorted by time above; within a member they stay sorted.
        check_sortedness=False,
    )
    return (
        matched.filter(pl.col("message_id").is_not_null())
        .with_columns(_credit_columns(kind))
        .select([*CREDITS_SCHEMA.keys(), "touched_at"])
    )


def changes(credits: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """The credits to write, given the orders' `existing` credits (order_id, kind): orders not
    credited yet, and orders whose new credit is more direct (a late redemption upgrades a
    view-through credit). Column `replaces` tells which ones replace an existing credit."""
    ranks = pl.DataFrame(
        {"kind": [kind.value for kind in RANK], "old_rank": list(RANK.values())},
        schema={"kind": pl.String, "old_rank": pl.Int64},
    )
    known = (
        existing.select(pl.col("order_id").cast(pl.Int64), pl.col("kind").cast(pl.String))
        .join(ranks, on="kind", how="left")
        .select("order_id", "old_rank")
    )
    joined = credits.join(known, on="order_id", how="left")
    wanted = pl.col("old_rank").is_null() | (pl.col("rank") < pl.col("old_rank"))
    return (
        joined.filter(wanted)
        .with_columns(pl.col("old_rank").is_not_null().alias("replaces"))
        .drop("old_rank")
    )
