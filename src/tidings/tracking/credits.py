"""Attributes the store's orders to messages in bulk: reads orders, deliveries, people's clicks
and coupon redemptions as frames, credits them (`attribution.credit_orders`) and writes the
new and upgraded credits to `attributions` in a few statements. Never commits.

Held-out members (messages skipped with reason `holdout`) and other skipped or cancelled
messages never reached a handset, so they earn no credit; their members' orders still count
for the holdout lift of the campaign report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from tidings import clock
from tidings.bulk import BulkStore
from tidings.config import Settings, get_settings
from tidings.db import utc_text
from tidings.dispatch.models import MessageState
from tidings.tracking.attribution import (
    CREDITS_SCHEMA,
    REDEMPTIONS_SCHEMA,
    TOUCHES_SCHEMA,
    Windows,
    changes,
    credit_orders,
)
from tidings.tracking.models import link_message_sql

# Orders older than this (before now) are left as they are by a run without `since`: their
# credit is settled unless a coupon turns up long after; `--since` reaches further back.
DEFAULT_LOOKBACK = timedelta(days=60)
NEVER_SENT = (MessageState.SKIPPED.value, MessageState.CANCELLED.value)
STAGE = "attribution_stage"
# The credit's columns as `attributions` keeps them (its own id and created_at aside).
ROW_COLUMNS = [
    "order_id",
    "message_id",
    "campaign_id",
    "variant_id",
    "trigger_id",
    "member_id",
    "kind",
    "revenue_cents",
    "ordered_at",
]


@dataclass
class AttributionResult:
    """What one run did: the orders it looked at, the credits it added and upgraded."""

    since: datetime
    orders: int = 0
    credited: int = 0
    upgraded: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The result as printed by `tidings report attribute --json`."""
        return {
            "since": self.since.isoformat(),
            "orders": self.orders,
            "credited": self.credited,
            "upgraded": self.upgraded,
            "by_kind": self.by_kind,
        }


def attribute_orders(
    *,
    db_session: Session,
    since: datetime | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> AttributionResult:
    """Credits the orders placed since `since` (default: 60 days before now) to messages."""
    settings = settings or get_settings()
    now = now or clock.now()
    since = (since or now - DEFAULT_LOOKBACK).astimezone(UTC)
    windows = Windows.of_days(
        click_days=settings.attribution_click_window_days,
        view_days=settings.attribution_view_window_days,
    )
    store = BulkStore(db_session)
    result = AttributionResult(since=since)
    orders = _orders(store, since)
    result.orders = orders.height
    if orders.height == 0:
        return result
    credits = credit_orders(
        orders,
        redemptions=_redemptions(store, since),
        clicks=_clicks(store, since - windows.click),
        deliveries=_deliveries(store, since - windows.view),
        windows=windows,
    )
    to_write = changes(credits, _existing(store, since))
    _write(store, to_write, now)
    result.upgraded = int(to_write["replaces"].sum())
    result.credited = to_write.height - result.upgraded
    counts = to_write.group_by("kind").len().sort("kind")
    result.by_kind = dict(zip(counts["kind"].to_list(), counts["len"].to_list(), strict=True))
    return result


def _moment(store: BulkStore, moment: datetime) -> Any:
    """A time as a query parameter: UTC text on SQLite (as UtcDateTime keeps it)."""
    return utc_text(moment) if store.dialect == "sqlite" else moment


def _orders(store: BulkStore, since: datetime) -> pl.DataFrame:
    return store.frame(
        "SELECT id, member_id, ordered_at, amount_cents FROM orders WHERE ordered_at >= ?",
        (_moment(store, since),),
        schema={
            "order_id": pl.Int64,
            "member_id": pl.Int64,
            "ordered_at": pl.Datetime("us", "UTC"),
            "amount_cents": pl.Int64,
        },
    )


def _deliveries(store: BulkStore, since: datetime) -> pl.DataFrame:
    return store.frame(
        "SELECT id, campaign_id, variant_id, trigger_id, member_id, delivered_at FROM messages"
        " WHERE delivered_at >= ? AND member_id IS NOT NULL",
        (_moment(store, since),),
        schema=TOUCHES_SCHEMA,
    )


def _clicks(store: BulkStore, since: datetime) -> pl.DataFrame:
    """People's clicks (robots and prefetches left out) on the links of messages sent."""
    return store.frame(
        "SELECT m.id, m.campaign_id, m.variant_id, m.trigger_id, m.member_id, k.clicked_at"
        " FROM clicks k JOIN short_links s ON s.id = k.link_id"
        f" JOIN messages m ON {link_message_sql('s', 'm')}"
        f" WHERE k.is_robot = ? AND k.clicked_at >= ? AND m.state NOT IN {NEVER_SENT}",
        (False, _moment(store, since)),
        schema=TOUCHES_SCHEMA,
    )


def _redemptions(store: BulkStore, since: datetime) -> pl.DataFrame:
    """Orders a message's coupon was redeemed on (the POS sends its own order id), with the
    message of the coupon's campaign, or of its trigger, to the coupon's member. Only a
    message a provider took counts: a coupon issued with a plan that never went out was not
    what brought the member."""
    select = (
        "SELECT m.id, m.campaign_id, m.variant_id, m.trigger_id, o.id,"
        " COALESCE(m.submitted_at, m.send_at)"
        " FROM coupons c JOIN orders o ON o.external_id = c.redeemed_order_ref"
        " JOIN messages m ON m.member_id = c.member_id AND m.{key} = c.{key}"
        " WHERE c.{key} IS NOT NULL AND c.redeemed_order_ref IS NOT NULL"
        " AND o.ordered_at >= ? AND m.submitted_at IS NOT NULL"
    )
    moment = _moment(store, since)
    return store.frame(
        f"{select.format(key='campaign_id')} UNION ALL {select.format(key='trigger_id')}",
        (moment, moment),
        schema=REDEMPTIONS_SCHEMA,
    )


def _existing(store: BulkStore, since: datetime) -> pl.DataFrame:
    return store.frame(
        "SELECT order_id, kind FROM attributions WHERE ordered_at >= ?",
        (_moment(store, since),),
        schema={"order_id": pl.Int64, "kind": pl.String},
    )


def _write(store: BulkStore, credits: pl.DataFrame, now: datetime) -> None:
    """Replaces the upgraded credits and adds the new ones; an order credited meanwhile by
    another run (the worker's housekeeping beside an import) keeps that credit."""
    if credits.height == 0:
        return
    time_type = "TEXT" if store.dialect == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    types = {name: "BIGINT" for name in ROW_COLUMNS} | {
        "kind": "VARCHAR(16)",
        "ordered_at": time_type,
        "created_at": time_type,
        "replaces": "BOOLEAN",
    }
    store.create_temp(STAGE, types)
    staged = credits.select([*ROW_COLUMNS, "replaces"]).with_columns(
        pl.lit(now, dtype=CREDITS_SCHEMA["ordered_at"]).alias("created_at")
    )
    store.ingest(STAGE, staged)
    store.execute(
        f"DELETE FROM attributions WHERE order_id IN"
        f" (SELECT order_id FROM {STAGE} WHERE replaces = ?)",
        (True,),
    )
    columns = ", ".join([*ROW_COLUMNS, "created_at"])
    # SQLite parses an upsert after a SELECT only when the SELECT has a WHERE.
    store.execute(
        f"INSERT INTO attributions ({columns}) SELECT {columns} FROM {STAGE}"
        " WHERE 1 = 1 ON CONFLICT (order_id) DO NOTHING"
    )
