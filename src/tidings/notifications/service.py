"""Operations on transactional messages: send (one or a batch), read a message's state and
history, check a verification code, and take codes out of the ledger once sent. These
functions never commit; the request or job that calls them does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from tidings import keys
from tidings.config import Settings
from tidings.db import is_sqlite
from tidings.dispatch.models import DeliveryReceipt, Message, MessageState
from tidings.notifications import codes
from tidings.notifications.models import Notification, NotificationKind, Verification
from tidings.notifications.recording import write_batch
from tidings.notifications.rendering import NotificationError
from tidings.notifications.schemas import (
    MessageAccepted,
    MessageCreate,
    MessageStatus,
    StateChange,
    VerificationResult,
)
from tidings.notifications.sending import Outcome, Prepared, prepare_batch
from tidings.notifications.throttle import VerificationLimits

__all__ = ["NotificationError", "Outcome"]
# Once a message is in one of these states its text need not be kept: the code goes.
HANDED_OVER = (
    MessageState.SUBMITTED,
    MessageState.DELIVERED,
    MessageState.FAILED,
    MessageState.EXPIRED,
    MessageState.UNKNOWN,
    MessageState.CANCELLED,
    MessageState.SKIPPED,
)


def _limited(
    requests: Sequence[MessageCreate], limits: VerificationLimits | None
) -> tuple[list[int], dict[int, str]]:
    """The positions of requests within their phone's limits, and the refusals of the rest."""
    allowed, refused = [], {}
    for index, request in enumerate(requests):
        refusal = limits.phone_refusal(request) if limits is not None else None
        if refusal is None:
            allowed.append(index)
        else:
            refused[index] = refusal
    return allowed, refused


@dataclass
class Pending:
    """A batch read and decided, to be written by `write_many`."""

    size: int
    allowed: list[int]
    refused: dict[int, str]
    prepared: Prepared


def prepare_many(
    *,
    db_session: Session,
    requests: Sequence[MessageCreate],
    settings: Settings,
    now: datetime,
    limits: VerificationLimits | None = None,
) -> Pending:
    """Reads and decides a batch of transactional messages without writing anything."""
    allowed, refused = _limited(requests, limits)
    prepared = prepare_batch(
        db_session=db_session, requests=[requests[i] for i in allowed], settings=settings, now=now
    )
    return Pending(len(requests), allowed, refused, prepared)


def write_many(
    *, db_session: Session, pending: Pending, settings: Settings, now: datetime
) -> Outcome:
    """Writes a batch from `prepare_many`: each request's answer, or why it was refused."""
    _hold_write_lock(db_session)
    sent = write_batch(db_session=db_session, prepared=pending.prepared, settings=settings, now=now)
    outcome = Outcome(errors=dict(pending.refused))
    for position, index in enumerate(pending.allowed):
        if position in sent.answers:
            outcome.answers[index] = sent.answers[position]
        else:
            outcome.errors[index] = sent.errors[position]
    return outcome


def send_many(
    *,
    db_session: Session,
    requests: Sequence[MessageCreate],
    settings: Settings,
    now: datetime,
    limits: VerificationLimits | None = None,
) -> Outcome:
    """Sends transactional messages at once; a verification past its phone's limit is refused."""
    _hold_write_lock(db_session)
    pending = prepare_many(
        db_session=db_session, requests=requests, settings=settings, now=now, limits=limits
    )
    return write_many(db_session=db_session, pending=pending, settings=settings, now=now)


def _hold_write_lock(db_session: Session) -> None:
    """On SQLite, takes the write lock before reading: a transaction that has read cannot
    wait for the lock, so a write of another request in between would make this one fail."""
    if is_sqlite(db_session):
        db_session.execute(text("UPDATE notifications SET id = id WHERE 1 = 0"))


def send_one(
    *,
    db_session: Session,
    request: MessageCreate,
    settings: Settings,
    now: datetime,
    limits: VerificationLimits | None = None,
) -> MessageAccepted:
    """Sends one transactional message, or raises a NotificationError saying why not."""
    outcome = send_many(
        db_session=db_session, requests=[request], settings=settings, now=now, limits=limits
    )
    if 0 in outcome.errors:
        raise _error_of(outcome.errors[0])
    return outcome.answers[0]


def _error_of(message: str) -> NotificationError:
    status = 429 if message.startswith("too many") else 404 if message.startswith("no ") else 422
    return NotificationError(message, status=status)


def error_status(message: str) -> int:
    """The HTTP status a refusal's message stands for."""
    return _error_of(message).status


def _history(db_session: Session, message: Message) -> list[StateChange]:
    steps = [StateChange(state="accepted", at=message.created_at)]
    if message.submitted_at is not None:
        steps.append(StateChange(state="submitted", at=message.submitted_at))
    receipts = db_session.scalars(
        select(DeliveryReceipt)
        .where(DeliveryReceipt.message_id == message.id)
        .order_by(DeliveryReceipt.occurred_at, DeliveryReceipt.id)
    )
    for receipt in receipts:
        detail = f"receipt from {receipt.provider}" + (
            f": {receipt.error_code}" if receipt.error_code else ""
        )
        steps.append(StateChange(state=str(receipt.status), at=receipt.occurred_at, detail=detail))
    if message.final_at is not None and message.state in (
        MessageState.SKIPPED,
        MessageState.CANCELLED,
        MessageState.EXPIRED,
    ):
        steps.append(
            StateChange(state=str(message.state), at=message.final_at, detail=message.skip_reason)
        )
    return steps


def get_message(*, db_session: Session, message_id: int) -> MessageStatus:
    """A message's state and history; a verification's code is masked."""
    message = db_session.get(Message, message_id)
    if message is None:
        raise NotificationError(f"no message has id {message_id}", status=404)
    request = db_session.scalar(select(Notification).where(Notification.message_id == message_id))
    shown = message.text
    if request is not None and request.kind is NotificationKind.VERIFICATION:
        masked = db_session.scalar(
            select(Verification.masked_text).where(Verification.notification_id == request.id)
        )
        shown = masked or codes.MASK * len(message.text)
    return MessageStatus(
        id=message.id,
        kind=str(message.kind),
        state=str(message.state),
        phone=message.phone,
        text=shown,
        parts=message.parts,
        cost_cents=message.cost_cents,
        skip_reason=message.skip_reason,
        error_code=message.error_code,
        send_at=message.send_at,
        idempotency_key=request.idempotency_key if request else None,
        callback_url=request.callback_url if request else None,
        history=_history(db_session, message),
    )


def check_code(
    *, db_session: Session, verification_id: str, code: str, settings: Settings, now: datetime
) -> VerificationResult:
    """Checks a code typed for a verification; each wrong try uses one of its attempts."""
    found = db_session.scalar(
        select(Verification).where(Verification.public_id == verification_id).with_for_update()
    )
    if found is None:
        raise NotificationError(f"no verification has id '{verification_id}'", status=404)
    left = max(found.max_attempts - found.attempts, 0)
    if found.verified_at is not None:
        return VerificationResult(verified=False, status="already_verified", attempts_left=left)
    if found.expires_at <= now:
        return VerificationResult(verified=False, status="expired", attempts_left=left)
    if left == 0:
        return VerificationResult(verified=False, status="locked", attempts_left=0)
    found.attempts += 1
    secret = keys.secret(settings, "verification")
    if codes.code_matches(code, public_id=found.public_id, secret=secret, stored=found.code_hash):
        found.verified_at = now
        db_session.flush()
        return VerificationResult(verified=True, status="verified", attempts_left=left - 1)
    db_session.flush()
    status = "locked" if left - 1 == 0 else "wrong_code"
    return VerificationResult(verified=False, status=status, attempts_left=left - 1)


def scrub_codes(*, db_session: Session, now: datetime) -> int:
    """Replaces the text of verification messages handed over with their masked text."""
    rows = db_session.execute(
        select(Verification.id, Notification.message_id, Verification.masked_text)
        .join(Notification, Notification.id == Verification.notification_id)
        .join(Message, Message.id == Notification.message_id)
        .where(Verification.scrubbed_at.is_(None), Message.state.in_(HANDED_OVER))
    ).all()
    for verification_id, message_id, masked in rows:
        db_session.execute(update(Message).where(Message.id == message_id).values(text=masked))
        db_session.execute(
            update(Verification).where(Verification.id == verification_id).values(scrubbed_at=now)
        )
    return len(rows)
