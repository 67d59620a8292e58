"""The demo members' reactions to a campaign in the days after it was sent, with a known true
effect: people click their short links (and link-preview robots fetch some first), members
order, and some redeem the campaign's coupon on the order.

Every member of the audience, treated or held out, orders within the view window with the
same base chance; a delivered message adds its variant's true effect (`ORDER_EFFECT`). So the
true lift per treated member is the effect times the share delivered, which the report's lift
over the holdout should find within its interval. Drawn with numpy at once, not member by
member, from a seed, so the same campaign reacts the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from sqlalchemy.orm import Session

from tidings import clock
from tidings.bulk import BulkStore, bulk_insert
from tidings.config import get_settings
from tidings.db import POLARS_SQLITE_TIME_FORMAT
from tidings.tracking.models import link_message_sql
from tidings.tracking.robots import agent_reason

UTC_TIME = pl.Datetime("us", "UTC")
BASE_ORDER_RATE = 0.06  # chance that a member orders in the window anyway
ORDER_EFFECT = {"A": 0.03, "B": 0.06}  # extra chance a delivered message gives, by variant
CLICK_RATE = {"A": 0.05, "B": 0.09}  # of delivered messages whose member opens the link
PREVIEW_SHARE = 0.25  # of delivered links a chat app's link preview fetches first
REDEEM_SHARE = 0.6  # of orders by members whose message (and coupon) arrived that use it
MEAN_BASKET_CENTS = 12_000  # ¥120
BASKET_SPREAD = 0.5  # log-normal sigma of basket size
PERSON_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0"
PREVIEW_AGENT = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class Reactions:
    """What the simulated members did: clicks (people and robots), orders, redemptions."""

    clicks: int
    robot_clicks: int
    orders: int
    holdout_orders: int
    redemptions: int
    window_end: datetime


def _audience(store: BulkStore, campaign_id: int) -> pl.DataFrame:
    """The campaign's treated and held-out members with their message, link and coupon."""
    return store.frame(
        "SELECT m.member_id, mb.store_id, v.name, m.state, m.skip_reason,"
        " COALESCE(m.delivered_at, m.submitted_at, m.send_at), l.id, c.id"
        " FROM messages m JOIN members mb ON mb.id = m.member_id"
        " LEFT JOIN variants v ON v.id = m.variant_id"
        f" LEFT JOIN short_links l ON {link_message_sql('l', 'm')}"
        " LEFT JOIN coupons c ON c.campaign_id = m.campaign_id AND c.member_id = m.member_id"
        " WHERE m.campaign_id = ? AND (m.state <> 'skipped' OR m.skip_reason = 'holdout')",
        (campaign_id,),
        schema={
            "member_id": pl.Int64,
            "store_id": pl.Int64,
            "variant": pl.String,
            "state": pl.String,
            "skip_reason": pl.String,
            "reached_at": UTC_TIME,
            "link_id": pl.Int64,
            "coupon_id": pl.Int64,
        },
    )


def simulate_reactions(*, db_session: Session, campaign_id: int, seed: int = 7) -> Reactions:
    """Writes the clicks, orders and coupon redemptions of the campaign's audience over the
    view window after the send; held-out members order at the base rate only."""
    store = BulkStore(db_session)
    # In member order, so that each member meets the same draw whatever order the store read
    # them in (PostgreSQL's varies from run to run).
    audience = _audience(store, campaign_id).unique("member_id", keep="first").sort("member_id")
    rng = np.random.default_rng([seed, campaign_id])
    start = audience.filter(pl.col("skip_reason").is_null())["reached_at"].min()
    if not isinstance(start, datetime):
        start = clock.now()
    window = timedelta(days=get_settings().attribution_view_window_days)
    height = audience.height
    delivered = (audience["state"] == "delivered").to_numpy()
    variant = audience["variant"].fill_null("")
    effect = variant.replace_strict(ORDER_EFFECT, default=0.0, return_dtype=pl.Float64).to_numpy()
    clicking = variant.replace_strict(CLICK_RATE, default=0.0, return_dtype=pl.Float64).to_numpy()
    has_link = audience["link_id"].is_not_null().to_numpy()
    draws = rng.random((4, height))
    frame = audience.with_columns(
        pl.Series("orders", draws[0] < BASE_ORDER_RATE + effect * delivered),
        pl.Series("clicks", delivered & has_link & (draws[1] < clicking)),
        pl.Series("previewed", delivered & has_link & (draws[2] < PREVIEW_SHARE)),
        pl.Series("redeems", delivered & (draws[3] < REDEEM_SHARE)),
        pl.col("reached_at").fill_null(start),
    )
    orders = _write_orders(db_session, frame.filter("orders"), rng, campaign_id, window)
    clicks = _write_clicks(db_session, frame, rng)
    redeemed = _redeem(store, orders.filter(pl.col("coupon_id").is_not_null() & pl.col("redeems")))
    held = orders.filter(pl.col("skip_reason") == "holdout").height
    return Reactions(
        clicks=int(frame["clicks"].sum()),
        robot_clicks=clicks - int(frame["clicks"].sum()),
        orders=orders.height,
        holdout_orders=held,
        redemptions=redeemed,
        window_end=start + window,
    )


def _write_orders(
    db_session: Session,
    buyers: pl.DataFrame,
    rng: np.random.Generator,
    campaign_id: int,
    window: timedelta,
) -> pl.DataFrame:
    """One order per buyer at a random time within the window after their message (held-out
    members: after the campaign's first send)."""
    hours = rng.uniform(1, window.total_seconds() / SECONDS_PER_HOUR - 1, buyers.height)
    baskets = rng.lognormal(np.log(MEAN_BASKET_CENTS), BASKET_SPREAD, buyers.height)
    now = clock.now()
    orders = buyers.with_columns(
        pl.format("DEMO-C{}-M{}", pl.lit(campaign_id), "member_id").alias("external_id"),
        (pl.col("reached_at") + pl.duration(seconds=pl.lit(pl.Series(hours * SECONDS_PER_HOUR))))
        .dt.truncate("1s")
        .alias("ordered_at"),
        pl.Series("amount_cents", np.round(baskets, -2).astype(np.int64)),
    )
    bulk_insert(
        db_session,
        "orders",
        orders.select(
            "external_id",
            "member_id",
            "store_id",
            "ordered_at",
            "amount_cents",
            pl.lit(0, dtype=pl.Int64).alias("discount_cents"),
            pl.lit(now, dtype=UTC_TIME).alias("created_at"),
        ),
    )
    return orders


def _write_clicks(db_session: Session, frame: pl.DataFrame, rng: np.random.Generator) -> int:
    """People's clicks within six hours of delivery; robot previews a second after it."""
    people = frame.filter("clicks")
    minutes = rng.uniform(2, 360, people.height)
    rows = [
        people.select(
            "link_id",
            (pl.col("reached_at") + pl.duration(seconds=pl.lit(pl.Series(minutes * 60))))
            .dt.truncate("1s")
            .alias("clicked_at"),
            pl.lit(PERSON_AGENT).alias("user_agent"),
            pl.lit(agent_reason(PERSON_AGENT), dtype=pl.String).alias("robot_reason"),
        ),
        frame.filter("previewed").select(
            "link_id",
            (pl.col("reached_at") + pl.duration(seconds=1)).alias("clicked_at"),
            pl.lit(PREVIEW_AGENT).alias("user_agent"),
            pl.lit(agent_reason(PREVIEW_AGENT), dtype=pl.String).alias("robot_reason"),
        ),
    ]
    # Marked by the same rules as the short-link redirect marks a real request.
    clicks = pl.concat(rows).with_columns(pl.col("robot_reason").is_not_null().alias("is_robot"))
    return bulk_insert(db_session, "clicks", clicks)


def _redeem(store: BulkStore, redeeming: pl.DataFrame) -> int:
    """Marks the coupons used on the members' orders, as the till would."""
    rows = redeeming.select(
        pl.lit("redeemed").alias("status"),
        "ordered_at",
        "external_id",
        "amount_cents",
        "coupon_id",
    )
    if store.dialect == "sqlite":
        rows = rows.with_columns(
            pl.col("ordered_at").dt.strftime(POLARS_SQLITE_TIME_FORMAT).alias("ordered_at")
        )
    store.execute_rows(
        "UPDATE coupons SET status = ?, redeemed_at = ?, redeemed_order_ref = ?,"
        " redeemed_amount_cents = ? WHERE id = ?",
        rows,
    )
    return rows.height
