"""Which occasions arriving events make: carts, orders, locations, custom events. Pure Polars.

Keys are made from what the event says (its time, the order's id), not from the row it was
stored as, so an event delivered twice, with or without an id, makes the same occasion.
"""

from __future__ import annotations

import polars as pl

from tidings.inbound.intents import Intent
from tidings.inbound.keywords import KeywordKind

UTC_TIME = pl.Datetime("us", "UTC")
EARTH_RADIUS_KM = 6371.0088
STAMP = "%Y%m%dT%H%M%S"
# Replies fire operator triggers on `reply` (any reply taken for something) or
# `reply:<intent>`. A stop is answered by its confirmation only, a complaint goes to a person
# and a reply nobody could read has nothing to react to: none of them fires a trigger.
REPLY_EVENT = "reply"
REPLY_PREFIX = f"{REPLY_EVENT}:"
REPLIES_NEVER_FIRE = frozenset(
    {"empty", "unknown", KeywordKind.OPT_OUT.value, Intent.COMPLAINT.value}
)
REPLY_INTENTS = frozenset(
    {*(i.value for i in Intent), *(k.value for k in KeywordKind), "survey", "preference"}
    - REPLIES_NEVER_FIRE
)


def _minutes(count: float) -> pl.Expr:
    return pl.duration(seconds=int(count * 60))


def cart_occasions(
    carts: pl.DataFrame, *, step: int, after_minutes: float, stop_after_minutes: float
) -> pl.DataFrame:
    """One reminder per cart event (`member_id`, `occurred_at`, `product`): step 1 or 2, due
    `after_minutes` after the cart and void `stop_after_minutes` after it."""
    return carts.select(
        "member_id",
        key=pl.format("cart:{}:{}", pl.col("occurred_at").dt.strftime(STAMP), pl.lit(step)),
        desired_at=pl.col("occurred_at") + _minutes(after_minutes),
        expires_at=pl.col("occurred_at") + _minutes(stop_after_minutes),
        event_at="occurred_at",
        product="product",
        step=pl.lit(step, dtype=pl.Int64),
    )


def without_later_order(occasions: pl.DataFrame, last_orders: pl.DataFrame) -> pl.DataFrame:
    """Drops occasions of members who ordered at or after the event (`member_id`, `last_at`)."""
    joined = occasions.join(last_orders, on="member_id", how="left", maintain_order="left")
    ordered = (pl.col("last_at") >= pl.col("event_at")).fill_null(False)
    return joined.filter(~ordered).drop("last_at")


def receipt_occasions(orders: pl.DataFrame, *, delay_minutes: float, timezone: str) -> pl.DataFrame:
    """One receipt per order (`order_id`, `member_id`, `ordered_at`, `amount_cents`,
    `store_name`, `points_earned`, `points_balance`), due `delay_minutes` after the order."""
    yuan = pl.col("amount_cents") // 100
    cents = (pl.col("amount_cents") % 100).cast(pl.String).str.zfill(2)
    return orders.select(
        "member_id",
        key=pl.format("receipt:{}", "order_id"),
        desired_at=pl.col("ordered_at") + _minutes(delay_minutes),
        event_at="ordered_at",
        order_day=pl.col("ordered_at").dt.convert_time_zone(timezone).dt.date(),
        order_store="store_name",
        amount_yuan=pl.format("{}.{}", yuan, cents),
        points_earned=pl.col("points_earned").fill_null(0),
        points_balance=pl.col("points_balance").fill_null(0),
    )


def distance_km(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle distance (haversine) between two points given in degrees."""
    phi1, phi2 = lat1.radians(), lat2.radians()
    dphi, dlambda = (lat2 - lat1).radians(), (lon2 - lon1).radians()
    a = (dphi / 2).sin() ** 2 + phi1.cos() * phi2.cos() * (dlambda / 2).sin() ** 2
    return 2 * EARTH_RADIUS_KM * a.sqrt().arcsin()


def nearest_stores(pings: pl.DataFrame, stores: pl.DataFrame, *, radius_km: float) -> pl.DataFrame:
    """Each ping's (`member_id`, `latitude`, `longitude`) nearest store within the radius:
    `store_id`, `nearby_store` (its name) and `km`; pings near no store are left out."""
    located = stores.filter(pl.col("latitude").is_not_null() & pl.col("longitude").is_not_null())
    pairs = pings.join(
        located.select(
            "store_id", "nearby_store", _lat=pl.col("latitude"), _lon=pl.col("longitude")
        ),
        how="cross",
    ).with_columns(
        km=distance_km(pl.col("latitude"), pl.col("longitude"), pl.col("_lat"), pl.col("_lon"))
    )
    return (
        pairs.filter(pl.col("km") <= radius_km)
        .sort("km")
        .unique("member_id", keep="first", maintain_order=True)
        .drop("_lat", "_lon")
    )


def custom_event_occasions(
    events: pl.DataFrame, *, delay_minutes: int, expiry_minutes: int | None
) -> pl.DataFrame:
    """One occasion per event of a custom trigger's type, `delay_minutes` after it; its
    payload's `value` and `item` are the template's {event_value} and {event_item}."""
    desired = pl.col("occurred_at") + _minutes(delay_minutes)
    expires = (
        desired + _minutes(expiry_minutes)
        if expiry_minutes is not None
        else pl.lit(None, dtype=UTC_TIME)
    )
    return events.select(
        "member_id",
        key=pl.format(
            "{}:{}", pl.col("kind").str.slice(0, 40), pl.col("occurred_at").dt.strftime(STAMP)
        ),
        desired_at=desired,
        expires_at=expires,
        event_at="occurred_at",
        event_value="value",
        event_item="item",
    )


def reacts_to_replies(event_type: str | None) -> bool:
    """Whether a trigger's event type is `reply` or `reply:<intent>`."""
    kind = event_type or ""
    return kind == REPLY_EVENT or kind.startswith(REPLY_PREFIX)


def reply_intent_problem(event_type: str) -> str | None:
    """Why `reply:<intent>` cannot fire (no reply is taken for that intent), or None."""
    intent = event_type.removeprefix(REPLY_PREFIX)
    if not event_type.startswith(REPLY_PREFIX) or intent in REPLY_INTENTS:
        return None
    return (
        f"no reply is taken for '{intent}'; a reply trigger reacts to 'reply' or to"
        f" 'reply:' and one of: {', '.join(sorted(REPLY_INTENTS))}"
    )


def reply_occasions(
    replies: pl.DataFrame, *, event_type: str, delay_minutes: int, expiry_minutes: int | None
) -> pl.DataFrame:
    """One occasion per reply (`reply_id`, `member_id`, `intent`, `received_at`, `text`) that
    `event_type` reacts to, keyed by the reply; its intent and text are the template's
    {event_value} and {event_item}."""
    wanted = ~pl.col("intent").is_in(list(REPLIES_NEVER_FIRE))
    if event_type.startswith(REPLY_PREFIX):
        wanted = pl.col("intent") == event_type.removeprefix(REPLY_PREFIX)
    desired = pl.col("received_at") + _minutes(delay_minutes)
    expires = (
        desired + _minutes(expiry_minutes)
        if expiry_minutes is not None
        else pl.lit(None, dtype=UTC_TIME)
    )
    return replies.filter(wanted & pl.col("member_id").is_not_null()).select(
        "member_id",
        key=pl.format("reply:{}", "reply_id"),
        desired_at=desired,
        expires_at=expires,
        event_at="received_at",
        event_value="intent",
        event_item=pl.col("text").str.strip_chars().str.slice(0, 40),
    )
