"""Reads what a campaign report needs from the store as Polars frames, in a few queries over
the caller's session: the campaign's messages with variant and home store, people's clicks,
replies, opt-outs, complaints, attributed credits, and the audience's orders for the lift."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from tidings.bulk import BulkStore
from tidings.campaigns.sources import phone_hashes
from tidings.db import utc_text
from tidings.members.models import ConsentKind, SuppressionReason
from tidings.reports.results import MESSAGES_SCHEMA, UTC_TIME
from tidings.tracking.models import link_message_sql

AUDIENCE = "(m.state <> 'skipped' OR m.skip_reason = 'holdout')"


def _moment(store: BulkStore, moment: datetime) -> Any:
    return utc_text(moment) if store.dialect == "sqlite" else moment


def messages(store: BulkStore, campaign_id: int) -> pl.DataFrame:
    """Every message of the campaign (skipped ones too), with its variant's name, the
    member's home store code, the phone's suppression hash, the time it went (or was due) and
    its step (0: the first send, 1, 2, ...: follow-up or countdown steps)."""
    frame = store.frame(
        "SELECT m.id, m.member_id, m.phone, v.name, s.code, m.state, m.skip_reason,"
        " m.cost_cents, COALESCE(m.submitted_at, m.send_at), m.submitted_at, m.step"
        " FROM messages m LEFT JOIN variants v ON v.id = m.variant_id"
        " LEFT JOIN members mb ON mb.id = m.member_id LEFT JOIN stores s ON s.id = mb.store_id"
        " WHERE m.campaign_id = ?",
        (campaign_id,),
        schema={**MESSAGES_SCHEMA, "phone_hash": pl.String, "step": pl.Int64},
    )
    return frame.with_columns(phone_hashes(frame["phone_hash"]).alias("phone_hash"))


def clicks(store: BulkStore, campaign_id: int) -> pl.DataFrame:
    """The campaign's messages that a person (no link-preview robot) clicked."""
    return store.frame(
        "SELECT DISTINCT m.id FROM clicks k JOIN short_links s ON s.id = k.link_id"
        f" JOIN messages m ON {link_message_sql('s', 'm')}"
        " WHERE m.campaign_id = ? AND k.is_robot = ?",
        (campaign_id, False),
        schema={"message_id": pl.Int64},
    )


def replies(store: BulkStore, campaign_id: int) -> pl.DataFrame:
    """Replies to the campaign's messages with what each was taken for."""
    return store.frame(
        "SELECT r.in_reply_to_message_id, r.intent FROM replies r"
        " JOIN messages m ON m.id = r.in_reply_to_message_id WHERE m.campaign_id = ?",
        (campaign_id,),
        schema={"message_id": pl.Int64, "intent": pl.String},
    )


def opt_outs(store: BulkStore, campaign_id: int, since: datetime) -> pl.DataFrame:
    """Marketing opt-outs of the campaign's members since its first send."""
    return store.frame(
        "SELECT DISTINCT c.member_id, c.occurred_at FROM consent_events c"
        " JOIN messages m ON m.member_id = c.member_id"
        " WHERE m.campaign_id = ? AND c.kind = ? AND c.occurred_at >= ?",
        (campaign_id, ConsentKind.OPT_OUT.value, _moment(store, since)),
        schema={"member_id": pl.Int64, "at": UTC_TIME},
    )


def complaints(store: BulkStore, since: datetime) -> pl.DataFrame:
    """Phones (by hash) suppressed for a complaint since the campaign's first send."""
    return store.frame(
        "SELECT phone_hash, created_at FROM suppressions WHERE reason = ? AND created_at >= ?",
        (SuppressionReason.COMPLAINED.value, _moment(store, since)),
        schema={"phone_hash": pl.String, "at": UTC_TIME},
    )


def credits(store: BulkStore, campaign_id: int) -> pl.DataFrame:
    """The orders credited to the campaign's messages."""
    return store.frame(
        "SELECT message_id, revenue_cents FROM attributions WHERE campaign_id = ?",
        (campaign_id,),
        schema={"message_id": pl.Int64, "revenue_cents": pl.Int64},
    )


def audience_orders(
    store: BulkStore, campaign_id: int, start: datetime, end: datetime
) -> pl.DataFrame:
    """Every order of the audience (treated or held out) placed from `start` to `end`."""
    return store.frame(
        "SELECT o.member_id, o.amount_cents FROM orders o"
        " JOIN messages m ON m.member_id = o.member_id"
        f" WHERE m.campaign_id = ? AND {AUDIENCE} AND o.ordered_at >= ? AND o.ordered_at <= ?",
        (campaign_id, _moment(store, start), _moment(store, end)),
        schema={"member_id": pl.Int64, "amount_cents": pl.Int64},
    )


def send_span(store: BulkStore, campaign_id: int) -> tuple[datetime | None, datetime | None]:
    """When the campaign's first and last messages were taken by a provider."""
    span = store.frame(
        "SELECT MIN(submitted_at), MAX(submitted_at) FROM messages WHERE campaign_id = ?",
        (campaign_id,),
        schema={"first": UTC_TIME, "last": UTC_TIME},
    )
    first, last = span.row(0)
    return first, last
