"""The counts behind sending health, read in bulk: messages handed to a provider are summed in
SQL per campaign, provider and quarter hour; only the few that met a reply, an opt-out or a
complaint are read one by one and laid to their messages in Polars.

A reply counts for the message it answers; an opt-out (a consent event) or a complaint (a
suppression, known by its phone hash) for the member's latest message before it, within
RESPONSE_WINDOW.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from tidings.bulk import BulkStore
from tidings.campaigns.sources import phone_hashes
from tidings.db import utc_text

RESPONSE_WINDOW = timedelta(days=3)  # an opt-out this soon after a message is laid to it
BUCKET_SECONDS = 900  # quarter hours: every timezone's offset is a whole number of them
SENT_AT = "COALESCE(m.submitted_at, m.final_at, m.updated_at)"
TAKEN = "m.attempts > 0 AND m.state IN ('submitted', 'unknown', 'delivered', 'failed', 'expired')"
KEYS = ("campaign_id", "provider", "bucket", "recent")
COUNTS = ("sent", "settled", "delivered", "undelivered", "replied", "opted_out", "complained")
FLAGS = ("replied", "opted_out", "complained")
UTC_TIME = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class Scope:
    """Which messages to count: an SQL condition over messages `m` (with ? markers), and
    the time from which a message counts as recent."""

    where: str
    params: tuple[Any, ...]
    since: datetime


def moment(store: BulkStore, at: datetime) -> Any:
    """A time as a query parameter: SQLite keeps UTC text, PostgreSQL a timestamp."""
    return utc_text(at) if store.dialect == "sqlite" else at.astimezone(UTC)


def _keys(store: BulkStore, scope: Scope) -> tuple[str, tuple[Any, ...]]:
    """The select list of the scope keys, and its parameters."""
    if store.dialect == "sqlite":
        # Text slices of the stored UTC text ('2026-12-01 09:' and the quarter): SQLite
        # slices text faster than it parses dates.
        bucket = f"substr({SENT_AT}, 1, 14) || (CAST(substr({SENT_AT}, 15, 2) AS INTEGER) / 15)"
    else:
        bucket = f"CAST(FLOOR(EXTRACT(EPOCH FROM {SENT_AT}) / {BUCKET_SECONDS}) AS BIGINT)"
    recent = f"CASE WHEN {SENT_AT} >= ? THEN 1 ELSE 0 END"
    select = f"m.campaign_id, m.provider, {bucket} AS bucket, {recent} AS recent"
    return select, (moment(store, scope.since),)


def _key_schema(store: BulkStore) -> dict[str, Any]:
    bucket = pl.String if store.dialect == "sqlite" else pl.Int64
    return {"campaign_id": pl.Int64, "provider": pl.String, "bucket": bucket, "recent": pl.Int64}


def _slot(store: BulkStore) -> pl.Expr:
    """The UTC start of a bucket's quarter hour."""
    bucket = pl.col("bucket")
    if store.dialect == "sqlite":
        hour = (bucket.str.slice(0, 13) + ":00").str.to_datetime("%Y-%m-%d %H:%M", time_zone="UTC")
        return hour + pl.duration(minutes=bucket.str.slice(14).cast(pl.Int64) * 15)
    return pl.from_epoch(bucket * BUCKET_SECONDS, time_unit="s").dt.replace_time_zone("UTC")


def message_counts(store: BulkStore, scope: Scope) -> pl.DataFrame:
    """Messages handed over per campaign, provider and quarter hour, by how they settled."""
    keys, params = _keys(store, scope)
    return store.frame(
        f"SELECT {keys}, COUNT(*),"
        " SUM(CASE WHEN m.state IN ('delivered', 'failed', 'expired') THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN m.state = 'delivered' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN m.state IN ('failed', 'expired') THEN 1 ELSE 0 END)"
        f" FROM messages m WHERE {TAKEN} AND ({scope.where})"
        " GROUP BY m.campaign_id, m.provider, bucket, recent",
        (*params, *scope.params),
        schema={
            **_key_schema(store),
            "sent": pl.Int64,
            "settled": pl.Int64,
            "delivered": pl.Int64,
            "undelivered": pl.Int64,
        },
    )


def _replies(store: BulkStore, scope: Scope, start: datetime) -> pl.DataFrame:
    """Each answered message with the reply's intent."""
    keys, params = _keys(store, scope)
    return store.frame(
        f"SELECT m.id, {keys}, r.intent, r.phone FROM replies r"
        " JOIN messages m ON m.id = r.in_reply_to_message_id"
        f" WHERE r.received_at >= ? AND {TAKEN} AND ({scope.where})",
        (*params, moment(store, start), *scope.params),
        schema={"id": pl.Int64, **_key_schema(store), "intent": pl.String, "phone": pl.String},
    )


def _candidates(
    store: BulkStore, scope: Scope, column: tuple[str, Any], condition: str, params: tuple[Any, ...]
) -> pl.DataFrame:
    """Messages (with the named column) that an opt-out or complaint may be laid to."""
    keys, key_params = _keys(store, scope)
    name, dtype = column
    return store.frame(
        f"SELECT m.id, {keys}, m.{name}, {SENT_AT} AS at FROM messages m"
        f" WHERE {TAKEN} AND ({scope.where}) AND {condition}",
        (*key_params, *scope.params, *params),
        schema={"id": pl.Int64, **_key_schema(store), name: dtype, "at": UTC_TIME},
    )


def _laid(events: pl.DataFrame, messages: pl.DataFrame, key: str) -> pl.DataFrame:
    """The messages events are laid to: the latest to the same `key` before each event."""
    if events.height == 0 or messages.height == 0:
        return messages.clear().select("id", *KEYS)
    laid = (
        events.drop_nulls(key)
        .sort("at")
        .join_asof(
            messages.drop_nulls(key).sort("at"),
            on="at",
            by=key,
            strategy="backward",
            check_sortedness=False,  # sorted by time above; Polars cannot check within groups
            tolerance=RESPONSE_WINDOW,
        )
    )
    return laid.drop_nulls("id").select("id", *KEYS)


def _opt_outs(store: BulkStore, scope: Scope, start: datetime) -> pl.DataFrame:
    """Messages followed by an opt-out of their member (a consent event)."""
    at = moment(store, start)
    events = store.frame(
        "SELECT member_id, occurred_at FROM consent_events"
        " WHERE kind = 'opt_out' AND occurred_at >= ?",
        (at,),
        schema={"member_id": pl.Int64, "at": UTC_TIME},
    )
    if events.height == 0:
        return pl.DataFrame(schema={"id": pl.Int64, **_key_schema(store)})
    members = (
        "m.member_id IN (SELECT member_id FROM consent_events"
        " WHERE kind = 'opt_out' AND occurred_at >= ?)"
    )
    messages = _candidates(store, scope, ("member_id", pl.Int64), members, (at,))
    return _laid(events, messages, "member_id")


def _complaints(
    store: BulkStore, scope: Scope, start: datetime, explained: pl.Series
) -> pl.DataFrame:
    """Messages followed by a complaint suppression that no complaint reply explains (a
    complaint by reply already counts for the message it answers)."""
    events = store.frame(
        "SELECT phone_hash, created_at FROM suppressions"
        " WHERE reason = 'complained' AND created_at >= ?",
        (moment(store, start),),
        schema={"phone_hash": pl.String, "at": UTC_TIME},
    ).filter(~pl.col("phone_hash").is_in(explained.implode()))
    if events.height == 0:
        return pl.DataFrame(schema={"id": pl.Int64, **_key_schema(store)})
    # A phone is known only by its hash: hash the phones sent to before the last complaint,
    # then read the keys of the few messages whose phone matched.
    first, last = events["at"].min(), events["at"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    phones = store.frame(
        f"SELECT m.id, m.phone FROM messages m WHERE {TAKEN} AND ({scope.where})"
        f" AND {SENT_AT} >= ? AND {SENT_AT} <= ?",
        (*scope.params, moment(store, first - RESPONSE_WINDOW), moment(store, last)),
        schema={"id": pl.Int64, "phone": pl.String},
    )
    matched = phones.filter(phone_hashes(phones["phone"]).is_in(events["phone_hash"].implode()))[
        "id"
    ]
    if matched.len() == 0:
        return pl.DataFrame(schema={"id": pl.Int64, **_key_schema(store)})
    ids = ", ".join(str(int(value)) for value in matched)
    messages = _candidates(store, scope, ("phone", pl.String), f"m.id IN ({ids})", ())
    hashed = messages.with_columns(phone_hash=phone_hashes(messages["phone"]))
    return _laid(events, hashed, "phone_hash")


def scope_counts(store: BulkStore, scope: Scope, *, timezone: str) -> pl.DataFrame:
    """Counts per campaign, provider, quarter hour and recency, with the local day."""
    counts = message_counts(store, scope)
    if counts.height == 0:
        return counts.with_columns(
            *(pl.lit(0, dtype=pl.Int64).alias(flag) for flag in FLAGS),
            day=pl.lit(None, dtype=pl.Date),
        )
    counts = counts.with_columns(slot=_slot(store))
    start = counts["slot"].min()
    assert isinstance(start, datetime)
    replies = _replies(store, scope, start)
    explained = phone_hashes(replies.filter(pl.col("intent") == "complaint")["phone"])
    marked = [
        replies.select("id", *KEYS).with_columns(flag=pl.lit("replied")),
        replies.filter(pl.col("intent") == "opt_out")
        .select("id", *KEYS)
        .with_columns(flag=pl.lit("opted_out")),
        replies.filter(pl.col("intent") == "complaint")
        .select("id", *KEYS)
        .with_columns(flag=pl.lit("complained")),
        _opt_outs(store, scope, start).with_columns(flag=pl.lit("opted_out")),
        _complaints(store, scope, start, explained).with_columns(flag=pl.lit("complained")),
    ]
    flags = (
        pl.concat(marked)
        .unique(["id", "flag"])
        .group_by(KEYS)
        .agg(*((pl.col("flag") == flag).sum().cast(pl.Int64).alias(flag) for flag in FLAGS))
    )
    joined = counts.join(flags, on=list(KEYS), how="left").with_columns(
        pl.col(flag).fill_null(0) for flag in FLAGS
    )
    return joined.with_columns(day=pl.col("slot").dt.convert_time_zone(timezone).dt.date())
