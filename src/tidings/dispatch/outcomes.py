"""Records what happened to claimed messages: sent, to retry with backoff, failed, expired.
Each function writes in bulk and leaves the commit to its caller."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tidings.dispatch.ledger import move
from tidings.dispatch.models import MessageState
from tidings.providers.base import Outcome, SendResult

BACKOFF_BASE = 2.0  # seconds before the first retry
BACKOFF_CAP = 300.0  # seconds; no retry waits longer than this
RETRIES_EXHAUSTED = "retries_exhausted"
EXPIRED_BEFORE_SEND = "expired_before_send"


def backoff(attempts: int, *, floor: float = 0.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before try number `attempts + 1`: exponential, capped, jittered."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempts - 1, 0))
    # Half fixed, half random ("equal jitter"): retries of one batch spread out, yet none
    # comes back sooner than half the backoff.
    delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return max(delay, floor)


@dataclass(slots=True)
class Tally:
    """Counts of what one step did, by the state messages reached."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, state: str, n: int = 1) -> None:
        """Adds `n` messages that reached `state`."""
        if n:
            key = str(state)
            self.counts[key] = self.counts.get(key, 0) + n

    def merge(self, other: Tally) -> None:
        """Adds another tally to this one."""
        for state, n in other.counts.items():
            self.add(state, n)


def record_results(
    *,
    db_session: Session,
    results: Sequence[SendResult],
    attempts: dict[int, int],
    max_attempts: int,
    now: datetime,
) -> Tally:
    """Writes a provider's answers: accepted -> submitted, retry -> queued later, failed."""
    tally = Tally()
    submitted, retried, failed = [], [], []
    for result in results:
        if result.outcome is Outcome.ACCEPTED:
            submitted.append((result.provider_message_id, now, result.message_id))
        elif result.outcome is Outcome.FAILED and result.permanent:
            failed.append((result.error_code, now, result.message_id))
        elif attempts.get(result.message_id, 1) >= max_attempts:
            code = f"{RETRIES_EXHAUSTED}:{result.error_code or 'error'}"[:64]
            failed.append((code, now, result.message_id))
        else:
            delay = backoff(attempts.get(result.message_id, 1), floor=result.retry_after)
            retried.append((now + timedelta(seconds=delay), result.error_code, result.message_id))
    move(
        db_session,
        target=MessageState.SUBMITTED,
        columns=["provider_message_id", "submitted_at"],
        rows=submitted,
        now=now,
        clear_lease=True,
    )
    move(
        db_session,
        target=MessageState.QUEUED,
        columns=["send_at", "error_code"],
        rows=retried,
        now=now,
        where=" AND state = 'submitting'",
        clear_lease=True,
    )
    move(
        db_session,
        target=MessageState.FAILED,
        columns=["error_code", "final_at"],
        rows=failed,
        now=now,
        clear_lease=True,
    )
    tally.add(MessageState.SUBMITTED, len(submitted))
    tally.add("retried", len(retried))
    tally.add(MessageState.FAILED, len(failed))
    return tally


def expire(*, db_session: Session, ids: Sequence[int], now: datetime) -> None:
    """Expires queued messages that can no longer go in time."""
    rows = [(EXPIRED_BEFORE_SEND, now, message_id) for message_id in ids]
    move(
        db_session,
        target=MessageState.EXPIRED,
        columns=["error_code", "final_at"],
        rows=rows,
        now=now,
        where=" AND state = 'queued'",
        clear_lease=True,
    )
