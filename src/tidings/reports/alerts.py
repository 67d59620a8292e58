"""Health breaches: each stored once, logged, and posted once to the operator's webhook
(signed when a secret is set); a post that fails stays pending and is tried at the next check."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import date, datetime
from typing import Any

import httpx
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.reports import wording
from tidings.reports.models import HealthBreach

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT = 5.0  # seconds: a slow receiver must not hold up the worker's housekeeping
SIGNATURE_HEADER = "X-Tidings-Signature"
POSTS_PER_CHECK = 100  # breaches posted per check; the rest wait for the next one


def breaches_in(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The breaches among health rows, one per scope, key, day and metric."""
    return [
        {
            "scope": row["scope"],
            "scope_key": row["key"],
            "day": date.fromisoformat(row["day"]),
            "metric": finding["metric"],
            "value": float(finding["value"]),
            "threshold": float(finding["threshold"]),
        }
        for row in rows
        if row["day"] is not None
        for finding in row["findings"]
        if finding["kind"] == "breach"
    ]


def record_breaches(
    *, db_session: Session, rows: list[dict[str, Any]], now: datetime
) -> list[HealthBreach]:
    """Stores the breaches of `rows` not stored before, logs each; returns the new ones."""
    found = breaches_in(rows)
    if not found:
        return []
    keys = [(item["scope"], item["scope_key"], item["day"], item["metric"]) for item in found]
    columns = (HealthBreach.scope, HealthBreach.scope_key, HealthBreach.day, HealthBreach.metric)
    stored = db_session.execute(select(*columns).where(tuple_(*columns).in_(keys)))
    known = {tuple(row) for row in stored}
    new = []
    for item, key in zip(found, keys, strict=True):
        if key in known:
            continue
        breach = HealthBreach(**item, detected_at=now)
        try:
            # Another worker may store the same breach at the same moment: keep theirs.
            with db_session.begin_nested():
                db_session.add(breach)
        except IntegrityError:
            continue
        log.warning("health breach: %s", describe(breach))
        new.append(breach)
    return new


def describe(breach: HealthBreach) -> str:
    """'provider aliyun on 2026-12-01: delivery rate 95.10% is below the 98.00% threshold'."""
    low = breach.metric == "delivery_rate"
    return wording.HEALTH_BREACH.format(
        scope=breach.scope,
        key=breach.scope_key,
        day=breach.day.isoformat(),
        metric=wording.HEALTH_METRIC_WORDS.get(breach.metric, breach.metric),
        value=wording.percent(breach.value, 2),
        side="below" if low else "above",
        threshold=wording.percent(breach.threshold, 2),
    )


def payload(breach: HealthBreach) -> dict[str, Any]:
    """The JSON body posted for one breach."""
    return {
        "event": "health.breach",
        "scope": breach.scope,
        "key": breach.scope_key,
        "day": breach.day.isoformat(),
        "metric": breach.metric,
        "value": breach.value,
        "threshold": breach.threshold,
        "detected_at": breach.detected_at.isoformat(),
        "text": describe(breach),
    }


def signature(body: bytes, secret: str) -> str:
    """The signature header's value: 'sha256=' and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_breaches(*, db_session: Session, settings: Settings, now: datetime) -> int:
    """Posts the breaches not posted yet to the webhook; returns how many it took."""
    if not settings.health_webhook_url:
        return 0
    # Rows locked while posting, skipped by another worker: each breach is posted once.
    pending = db_session.scalars(
        select(HealthBreach)
        .where(HealthBreach.posted_at.is_(None))
        .order_by(HealthBreach.id)
        .limit(POSTS_PER_CHECK)
        .with_for_update(skip_locked=True)
    ).all()
    posted = 0
    with httpx.Client(timeout=WEBHOOK_TIMEOUT) as client:
        for breach in pending:
            body = json.dumps(payload(breach), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json"}
            if settings.health_webhook_secret:
                headers[SIGNATURE_HEADER] = signature(body, settings.health_webhook_secret)
            try:
                answer = client.post(settings.health_webhook_url, content=body, headers=headers)
                answer.raise_for_status()
            except httpx.HTTPError as error:
                log.warning("health webhook: %s; tried again at the next check", error)
                break  # the receiver is down: the rest wait too
            breach.posted_at = now
            posted += 1
    db_session.flush()
    return posted
