"""Status callbacks: each change of an API message's state becomes a stored delivery row,
posted to the integrator's URL signed with HMAC-SHA256 and retried until taken.

Rows are written before anything is posted, and a row is marked delivered only after its
URL answered 2xx, so a crash loses nothing: the next pass posts what is still pending (a
receiver may see a post twice and recognises it by `message_id` and `status`). States are
read at each pass, so a message that moves twice between passes reports its latest state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
import stamina
from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.orm import Session

from tidings import clock, keys
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.models import Message
from tidings.notifications.models import CallbackDelivery, CallbackState, Notification
from tidings.notifications.service import scrub_codes

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Tidings-Signature"
BATCH = 200  # callbacks posted per pass
BACKOFF_BASE = 5.0  # seconds before the second pass tries a failed callback again
BACKOFF_CAP = 3600.0  # seconds: the longest wait between tries
# Within one pass a post is tried up to 3 times over a few seconds: most failures are a
# receiver restarting. Longer outages are waited out between passes (BACKOFF_*).
QUICK_TRIES = 3
QUICK_TIMEOUT = 10.0  # seconds all quick tries of one post may take
OUTCOME_NAMES = {
    CallbackState.DELIVERED: "delivered",
    CallbackState.PENDING: "retrying",
    CallbackState.FAILED: "failed",
}


class CallbackRefused(Exception):
    """The receiver answered with a status other than 2xx."""


def signature(body: bytes, secret: str) -> str:
    """The value of X-Tidings-Signature for `body`: sha256=<hex HMAC-SHA256>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _body(notification_id: int, row: Any) -> str:
    payload = {
        "message_id": row.message_id,
        "idempotency_key": row.idempotency_key,
        "status": str(row.state),
        "error_code": row.error_code,
        "at": row.updated_at.isoformat(),
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)


def queue_changes(*, db_session: Session, now: datetime) -> int:
    """Stores a delivery row for every API message whose state changed since the last one."""
    n, m = Notification.__table__.c, Message.__table__.c
    changed = db_session.execute(
        select(
            n.id,
            n.idempotency_key,
            n.callback_url,
            m.id.label("message_id"),
            m.state,
            m.error_code,
            m.updated_at,
        )
        .join_from(Notification.__table__, Message.__table__, m.id == n.message_id)
        .where(
            n.callback_url.is_not(None),
            or_(n.notified_state.is_(None), n.notified_state != m.state),
        )
        .limit(BATCH * 5)
    ).all()
    for row in changed:
        exists = db_session.scalar(
            select(CallbackDelivery.id).where(
                CallbackDelivery.notification_id == row.id,
                CallbackDelivery.status == str(row.state),
            )
        )
        if exists is None:
            db_session.add(
                CallbackDelivery(
                    notification_id=row.id,
                    url=row.callback_url,
                    status=str(row.state),
                    body=_body(row.id, row),
                    state=CallbackState.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        db_session.execute(
            update(Notification)
            .where(Notification.id == row.id)
            .values(notified_state=str(row.state))
        )
    db_session.flush()
    return len(changed)


def due(*, db_session: Session, now: datetime) -> list[CallbackDelivery]:
    """The pending callbacks whose time has come, oldest first."""
    query = (
        select(CallbackDelivery)
        .where(
            and_(
                CallbackDelivery.state == CallbackState.PENDING,
                CallbackDelivery.next_attempt_at <= now,
            )
        )
        .order_by(CallbackDelivery.id)
        .limit(BATCH)
    )
    return list(db_session.scalars(query))


def post(client: httpx.Client, delivery: CallbackDelivery, *, secret: str) -> None:
    """Posts one callback, a few quick tries; raises when the receiver did not take it."""
    body = delivery.body.encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body, secret)}
    for attempt in stamina.retry_context(
        on=(httpx.TransportError, CallbackRefused), attempts=QUICK_TRIES, timeout=QUICK_TIMEOUT
    ):
        with attempt:
            answer = client.post(delivery.url, content=body, headers=headers)
            if not answer.is_success:
                raise CallbackRefused(f"answered {answer.status_code}")


def record(
    delivery: CallbackDelivery, *, error: str | None, now: datetime, settings: Settings
) -> None:
    """Marks a callback delivered, or schedules its next try (or gives it up)."""
    delivery.attempts += 1
    if error is None:
        delivery.state = CallbackState.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = None
        return
    delivery.last_error = error[:200]
    if delivery.attempts >= settings.callback_max_attempts:
        delivery.state = CallbackState.FAILED
        log.warning("callback %s to %s given up: %s", delivery.id, delivery.url, error)
        return
    wait = min(BACKOFF_BASE * 2 ** (delivery.attempts - 1), BACKOFF_CAP)
    delivery.next_attempt_at = now + timedelta(seconds=wait)


def deliver_due(
    *, db_session: Session, client: httpx.Client, settings: Settings, now: datetime
) -> dict[str, int]:
    """Posts the callbacks due, then records the answers; returns counts by outcome."""
    pending = due(db_session=db_session, now=now)
    # Every post first, every write after: the store is not held while receivers answer.
    errors: list[str | None] = []
    for delivery in pending:
        try:
            post(client, delivery, secret=keys.secret(settings, "callback"))
            errors.append(None)
        except (httpx.HTTPError, CallbackRefused) as failure:
            errors.append(str(failure) or type(failure).__name__)
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    for delivery, error in zip(pending, errors, strict=True):
        record(delivery, error=error, now=now, settings=settings)
        counts[OUTCOME_NAMES[delivery.state]] += 1
    db_session.flush()
    return counts


def run_pass(engine: Engine, *, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """One housekeeping pass: note state changes, mask sent codes, post what is due."""
    moment = now or clock.now()
    with session_scope(engine) as session:
        queued = queue_changes(db_session=session, now=moment)
        scrub_codes(db_session=session, now=moment)
    with (
        session_scope(engine) as session,
        httpx.Client(timeout=settings.callback_timeout_seconds) as client,
    ):
        counts = deliver_due(db_session=session, client=client, settings=settings, now=moment)
    return {"changes": queued, **counts}
