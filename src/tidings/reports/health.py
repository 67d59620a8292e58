"""Sending health: delivery, opt-out, complaint and reply rates per campaign, provider and
day, against the thresholds in settings; breaches are stored once, logged and posted.

Counts are read in bulk (messages handed to a provider, the replies to them, opt-outs and
complaint suppressions) and joined in Polars: a reply counts for the message it answers, an
opt-out or complaint for the member's latest message before it (within RESPONSE_WINDOW).
Rates are shares of settled messages (delivery) or of delivered ones (the others).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns.sources import phone_hashes
from tidings.config import Settings, get_settings
from tidings.db import BulkStore, utc_text
from tidings.reports import alerts, wording
from tidings.reports.models import HealthBreach

log = logging.getLogger(__name__)
RESPONSE_WINDOW = timedelta(days=3)  # an opt-out this soon after a message is laid to it
SCOPES = ("campaign", "provider", "day")
BREACH_METRICS = ("delivery_rate", "opt_out_rate", "complaint_rate")
SENT_STATES = "('submitted', 'unknown', 'delivered', 'failed', 'expired')"
MESSAGE_SCHEMA = {
    "id": pl.Int64,
    "campaign_id": pl.Int64,
    "provider": pl.String,
    "phone": pl.String,
    "member_id": pl.Int64,
    "state": pl.String,
    "sent_at": pl.Datetime("us", "UTC"),
}
COUNTS = ("sent", "settled", "delivered", "undelivered", "replied", "opted_out", "complained")


class HealthInputError(ValueError):
    """A health question that cannot be answered as asked."""


@dataclass(frozen=True)
class Thresholds:
    """What healthy sending looks like (settings TIDINGS_HEALTH_*)."""

    delivery_min: float
    opt_out_max: float
    complaint_max: float
    reply_low: float
    reply_high: float
    min_settled: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """The thresholds an operator configured."""
        return cls(
            delivery_min=settings.health_delivery_min,
            opt_out_max=settings.health_opt_out_max,
            complaint_max=settings.health_complaint_max,
            reply_low=settings.health_reply_min,
            reply_high=settings.health_reply_max,
            min_settled=settings.health_min_settled,
        )


def _moment(store: BulkStore, moment: datetime) -> Any:
    """A time as a query parameter: SQLite keeps UTC text, PostgreSQL a timestamp."""
    return utc_text(moment) if store.dialect == "sqlite" else moment.astimezone(UTC)


def _messages(store: BulkStore, where: str, params: tuple[Any, ...]) -> pl.DataFrame:
    """Messages handed to a provider, with the time they were handed over."""
    return store.frame(
        "SELECT id, campaign_id, provider, phone, member_id, state,"
        " COALESCE(submitted_at, final_at, updated_at) AS sent_at FROM messages"
        f" WHERE attempts > 0 AND state IN {SENT_STATES} AND ({where})",
        params,
        schema=MESSAGE_SCHEMA,
    )


def _responses(store: BulkStore, since: datetime) -> dict[str, pl.DataFrame]:
    """Replies, opt-outs and complaint suppressions since `since`."""
    at = _moment(store, since)
    when = pl.Datetime("us", "UTC")
    return {
        "replies": store.frame(
            "SELECT in_reply_to_message_id, intent FROM replies"
            " WHERE in_reply_to_message_id IS NOT NULL AND received_at >= ?",
            (at,),
            schema={"id": pl.Int64, "intent": pl.String},
        ),
        "opt_outs": store.frame(
            "SELECT member_id, occurred_at FROM consent_events"
            " WHERE kind = 'opt_out' AND occurred_at >= ?",
            (at,),
            schema={"member_id": pl.Int64, "at": when},
        ),
        "complaints": store.frame(
            "SELECT phone_hash, created_at FROM suppressions"
            " WHERE reason = 'complained' AND created_at >= ?",
            (at,),
            schema={"phone_hash": pl.String, "at": when},
        ),
    }


def _laid_to_messages(events: pl.DataFrame, messages: pl.DataFrame, key: str) -> pl.Series:
    """Ids of the messages each event is laid to: the latest one to the same `key` before
    the event, within RESPONSE_WINDOW."""
    if events.height == 0 or messages.height == 0:
        return pl.Series("id", [], dtype=pl.Int64)
    laid = (
        events.drop_nulls(key)
        .sort("at")
        .join_asof(
            messages.select(key, "id", pl.col("sent_at").alias("at")).drop_nulls(key).sort("at"),
            on="at",
            by=key,
            strategy="backward",
            check_sortedness=False,  # sorted by time above; Polars cannot check within groups
            tolerance=RESPONSE_WINDOW,
        )
    )
    return laid["id"].drop_nulls()


def message_outcomes(
    messages: pl.DataFrame, responses: dict[str, pl.DataFrame], *, timezone: str
) -> pl.DataFrame:
    """One row per message: its scope keys, whether it settled, was delivered, answered,
    followed by an opt-out or by a complaint."""
    replies = responses["replies"]
    opted = pl.concat(
        [
            replies.filter(pl.col("intent") == "opt_out")["id"],
            _laid_to_messages(responses["opt_outs"], messages, "member_id"),
        ]
    )
    hashed = messages.with_columns(phone_hash=phone_hashes(messages["phone"]))
    complained = pl.concat(
        [
            replies.filter(pl.col("intent") == "complaint")["id"],
            _laid_to_messages(responses["complaints"], hashed, "phone_hash"),
        ]
    )
    return messages.select(
        pl.col("campaign_id").cast(pl.String).alias("campaign"),
        pl.col("provider"),
        pl.col("sent_at").dt.convert_time_zone(timezone).dt.date().alias("day"),
        pl.lit(1).alias("sent"),
        pl.col("state").is_in(["delivered", "failed", "expired"]).cast(pl.Int64).alias("settled"),
        (pl.col("state") == "delivered").cast(pl.Int64).alias("delivered"),
        pl.col("state").is_in(["failed", "expired"]).cast(pl.Int64).alias("undelivered"),
        pl.col("id").is_in(replies["id"].implode()).cast(pl.Int64).alias("replied"),
        pl.col("id").is_in(opted.implode()).cast(pl.Int64).alias("opted_out"),
        pl.col("id").is_in(complained.implode()).cast(pl.Int64).alias("complained"),
    )


def _rates(counts: pl.DataFrame) -> pl.DataFrame:
    delivered = pl.col("delivered").cast(pl.Float64)
    return counts.with_columns(
        delivery_rate=pl.when(pl.col("settled") > 0).then(delivered / pl.col("settled")),
        opt_out_rate=pl.when(delivered > 0).then(pl.col("opted_out") / delivered),
        complaint_rate=pl.when(delivered > 0).then(pl.col("complained") / delivered),
        reply_rate=pl.when(delivered > 0).then(pl.col("replied") / delivered),
    )


def summarise(outcomes: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Counts and rates of the outcomes grouped by `by` (every message when empty)."""
    totals = [pl.col(name).sum() for name in COUNTS]
    if not by:
        return _rates(outcomes.select(*totals, pl.col("day").min()))
    grouped = outcomes.group_by(by).agg(*totals, pl.col("day").min().alias("first_day"))
    return _rates(grouped.sort(by))


def findings(row: dict[str, Any], thresholds: Thresholds) -> list[dict[str, Any]]:
    """What is wrong with one scope's rates: breaches of thresholds and reply-rate notes."""
    if row["settled"] < thresholds.min_settled:
        text = wording.HEALTH_TOO_FEW.format(count=row["settled"], minimum=thresholds.min_settled)
        return [{"metric": "settled", "kind": "too_few", "value": row["settled"], "text": text}]
    found = []
    checks = (
        ("delivery_rate", thresholds.delivery_min, "delivered", "settled", True),
        ("opt_out_rate", thresholds.opt_out_max, "opted_out", "delivered", False),
        ("complaint_rate", thresholds.complaint_max, "complained", "delivered", False),
    )
    for metric, threshold, count, base, is_minimum in checks:
        value = row[metric]
        if value is None or (value >= threshold if is_minimum else value <= threshold):
            continue
        template = wording.HEALTH_LOW if is_minimum else wording.HEALTH_HIGH
        text = template.format(
            metric=wording.HEALTH_METRIC_WORDS[metric],
            value=wording.percent(value, 2),
            threshold=wording.percent(threshold, 2),
            count=f"{row[count]:,}",
            base=f"{row[base]:,} {base}",
        )
        found.append(
            {
                "metric": metric,
                "kind": "breach",
                "value": value,
                "threshold": threshold,
                "text": text,
            }
        )
    reply = row["reply_rate"]
    if reply is not None and not thresholds.reply_low <= reply <= thresholds.reply_high:
        template = (
            wording.HEALTH_REPLY_LOW if reply < thresholds.reply_low else wording.HEALTH_REPLY_HIGH
        )
        text = template.format(
            value=wording.percent(reply),
            low=wording.percent(thresholds.reply_low, 0),
            high=wording.percent(thresholds.reply_high, 0),
        )
        threshold = thresholds.reply_low if reply < thresholds.reply_low else thresholds.reply_high
        found.append(
            {
                "metric": "reply_rate",
                "kind": "note",
                "value": reply,
                "threshold": threshold,
                "text": text,
            }
        )
    return found


def _scope_rows(
    frame: pl.DataFrame, scope: str, key: str | None, thresholds: Thresholds
) -> list[dict[str, Any]]:
    rows = []
    for row in frame.iter_rows(named=True):
        day = row.get("first_day") if scope == "campaign" else row.get("day")
        out = {
            "scope": scope,
            "key": str(row[key]) if key else "all",
            "day": day.isoformat() if isinstance(day, date) else None,
            **{name: int(row[name]) for name in COUNTS},
            **{metric: row[metric] for metric in (*BREACH_METRICS, "reply_rate")},
        }
        out["findings"] = findings(out, thresholds)
        out["healthy"] = not any(item["kind"] == "breach" for item in out["findings"])
        rows.append(out)
    return rows


def _outcomes(
    store: BulkStore, messages: pl.DataFrame, *, since: datetime, settings: Settings
) -> pl.DataFrame:
    """The outcome of each message, reading the responses since its first was sent."""
    first = messages["sent_at"].min() if messages.height else None
    start = min(first, since) if isinstance(first, datetime) else since
    return message_outcomes(
        messages, _responses(store, start), timezone=settings.default_timezone
    ).with_columns(messages["sent_at"])


def health_rows(
    *, db_session: Session, days: int, now: datetime, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Health of the last `days` days per campaign, provider and day, with findings."""
    settings = settings or get_settings()
    if days < 1:
        raise HealthInputError(f"days must be at least 1, not {days}")
    store = BulkStore(db_session)
    since = now - timedelta(days=days)
    at = _moment(store, since)
    # A campaign that sent in the period is judged on all of its messages.
    messages = _messages(
        store,
        "COALESCE(submitted_at, final_at, updated_at) >= ? OR campaign_id IN (SELECT campaign_id"
        " FROM messages WHERE campaign_id IS NOT NULL AND submitted_at >= ?)",
        (at, at),
    )
    outcomes = _outcomes(store, messages, since=since, settings=settings)
    thresholds = Thresholds.from_settings(settings)
    recent = outcomes.filter(pl.col("sent_at") >= since)
    campaigns = summarise(outcomes.drop_nulls("campaign"), ["campaign"])
    return [
        *_scope_rows(campaigns, "campaign", "campaign", thresholds),
        *_scope_rows(summarise(recent, ["provider", "day"]), "provider", "provider", thresholds),
        *_scope_rows(summarise(recent, ["day"]), "day", None, thresholds),
    ]


def campaign_health(
    *, db_session: Session, campaign_id: int, settings: Settings | None = None
) -> dict[str, Any]:
    """Health of one campaign: overall, per provider and per day, with findings."""
    settings = settings or get_settings()
    store = BulkStore(db_session)
    messages = _messages(store, "campaign_id = ?", (campaign_id,))
    outcomes = _outcomes(store, messages, since=clock.now(), settings=settings)
    thresholds = Thresholds.from_settings(settings)
    overall = summarise(outcomes, []).with_columns(first_day=pl.col("day"))
    (row,) = _scope_rows(
        overall.with_columns(campaign=pl.lit(str(campaign_id))), "campaign", "campaign", thresholds
    )
    return {
        "campaign_id": campaign_id,
        **row,
        "by_provider": _scope_rows(
            summarise(outcomes, ["provider"]), "provider", "provider", thresholds
        ),
        "by_day": _scope_rows(summarise(outcomes, ["day"]), "day", None, thresholds),
    }


def check_health(
    *, db_session: Session, days: int, now: datetime, settings: Settings | None = None
) -> list[HealthBreach]:
    """Stores and logs each new breach of the last `days` days and posts every breach not
    posted yet to the webhook; returns the new breaches."""
    settings = settings or get_settings()
    rows = health_rows(db_session=db_session, days=days, now=now, settings=settings)
    new = alerts.record_breaches(db_session=db_session, rows=rows, now=now)
    alerts.post_breaches(db_session=db_session, settings=settings, now=now)
    return new


def stored_breaches(*, db_session: Session, since: date) -> list[dict[str, Any]]:
    """The breaches stored for days since `since`, newest first, as JSON-ready dicts."""
    found = db_session.scalars(
        select(HealthBreach)
        .where(HealthBreach.day >= since)
        .order_by(HealthBreach.day.desc(), HealthBreach.id.desc())
    ).all()
    return [
        {
            **alerts.payload(breach),
            "posted_at": breach.posted_at.isoformat() if breach.posted_at else None,
        }
        for breach in found
    ]


def health_report(
    *, db_session: Session, days: int, now: datetime, settings: Settings | None = None
) -> dict[str, Any]:
    """The health of the last `days` days with the thresholds and the breaches stored."""
    settings = settings or get_settings()
    rows = health_rows(db_session=db_session, days=days, now=now, settings=settings)
    since = (now - timedelta(days=days)).astimezone(UTC).date()
    return {
        "days": days,
        "since": since.isoformat(),
        "thresholds": asdict(Thresholds.from_settings(settings)),
        "rows": rows,
        "breaches": stored_breaches(db_session=db_session, since=since),
    }
