"""Sending health: delivery, opt-out, complaint and reply rates per campaign, provider and
day, against the thresholds in settings; breaches are stored once, logged and posted.

The counts come from health_counts (summed in SQL, responses laid to messages in Polars).
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
from tidings.bulk import BulkStore
from tidings.config import Settings, get_settings
from tidings.reports import alerts, wording
from tidings.reports.health_counts import COUNTS, SENT_AT, Scope, moment, scope_counts
from tidings.reports.models import HealthBreach

log = logging.getLogger(__name__)
BREACH_METRICS = ("delivery_rate", "opt_out_rate", "complaint_rate")


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
    note = _reply_note(row["reply_rate"], thresholds)
    return [*found, note] if note else found


def _reply_note(reply: float | None, thresholds: Thresholds) -> dict[str, Any] | None:
    """A note when the reply rate is outside the healthy range, saying on which side."""
    if reply is None or thresholds.reply_low <= reply <= thresholds.reply_high:
        return None
    low = reply < thresholds.reply_low
    text = (wording.HEALTH_REPLY_LOW if low else wording.HEALTH_REPLY_HIGH).format(
        value=wording.percent(reply),
        low=wording.percent(thresholds.reply_low, 0),
        high=wording.percent(thresholds.reply_high, 0),
    )
    threshold = thresholds.reply_low if low else thresholds.reply_high
    return {
        "metric": "reply_rate",
        "kind": "note",
        "value": reply,
        "threshold": threshold,
        "text": text,
    }


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


def health_rows(
    *, db_session: Session, days: int, now: datetime, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Health of the last `days` days per campaign, provider and day, with findings."""
    settings = settings or get_settings()
    if days < 1:
        raise HealthInputError(f"days must be at least 1, not {days}")
    store = BulkStore(db_session)
    since = now - timedelta(days=days)
    at = moment(store, since)
    # A campaign that sent in the period is judged on all of its messages.
    scope = Scope(
        f"{SENT_AT} >= ? OR m.campaign_id IN (SELECT campaign_id FROM messages"
        " WHERE campaign_id IS NOT NULL AND submitted_at >= ?)",
        (at, at),
        since,
    )
    counts = _keyed(scope_counts(store, scope, timezone=settings.default_timezone))
    thresholds = Thresholds.from_settings(settings)
    recent = counts.filter(pl.col("recent") == 1)
    campaigns = summarise(counts.drop_nulls("campaign"), ["campaign"])
    return [
        *_scope_rows(campaigns, "campaign", "campaign", thresholds),
        *_scope_rows(summarise(recent, ["provider", "day"]), "provider", "provider", thresholds),
        *_scope_rows(summarise(recent, ["day"]), "day", None, thresholds),
    ]


def _keyed(counts: pl.DataFrame) -> pl.DataFrame:
    """The counts with the campaign's id as the text of its scope key."""
    return counts.with_columns(campaign=pl.col("campaign_id").cast(pl.String))


def campaign_health(
    *, db_session: Session, campaign_id: int, settings: Settings | None = None
) -> dict[str, Any]:
    """Health of one campaign: overall, per provider and per day, with findings."""
    settings = settings or get_settings()
    store = BulkStore(db_session)
    scope = Scope("m.campaign_id = ?", (campaign_id,), clock.now())
    outcomes = _keyed(scope_counts(store, scope, timezone=settings.default_timezone))
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
