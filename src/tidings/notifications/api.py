"""REST endpoints of transactional messages: send one or a batch, read one, check a code."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tidings import clock
from tidings.config import Settings, get_settings
from tidings.db import is_sqlite
from tidings.http import DbSession, RowId, require_scope
from tidings.notifications import service
from tidings.notifications.intake import Intake
from tidings.notifications.rendering import NotificationError
from tidings.notifications.schemas import (
    BatchAnswer,
    BatchItem,
    MessageAccepted,
    MessageBatch,
    MessageCreate,
    MessageStatus,
    VerificationCheck,
    VerificationResult,
)
from tidings.notifications.throttle import VerificationLimits

router = APIRouter(tags=["messages"])


def _settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


def _limits(request: Request) -> VerificationLimits:
    state = request.app.state
    if getattr(state, "verification_limits", None) is None:
        state.verification_limits = VerificationLimits(_settings(request))
    limits: VerificationLimits = state.verification_limits
    return limits


def _intake(request: Request) -> Intake:
    state = request.app.state
    if getattr(state, "message_intake", None) is None:
        state.message_intake = Intake(state.engine, _settings(request), _limits(request))
    intake: Intake = state.message_intake
    return intake


def _address_check(request: Request, body: MessageCreate | None = None) -> None:
    if body is not None and body.kind.value != "verification":
        return
    address = request.client.host if request.client else "unknown"
    refusal = _limits(request).address_refusal(address)
    if refusal is not None:
        raise HTTPException(429, refusal)


def _commit_key_check(db_session: Session) -> None:
    """Commits the API key's last-used time before the message is written. On SQLite a
    batch written since the key was read makes that stamp fail; the key was checked, so the
    request goes on and the next one stamps the time."""
    try:
        db_session.commit()
    except OperationalError:
        if not is_sqlite(db_session):
            raise
        db_session.rollback()
    # Give the connection back while the message waits for its batch: requests in flight
    # would otherwise hold one each and outgrow the pool.
    db_session.close()


@router.post(
    "/messages",
    response_model=MessageAccepted,
    status_code=201,
    dependencies=[require_scope("messages:write")],
)
async def send_message(
    body: MessageCreate, request: Request, response: Response, db_session: DbSession
) -> MessageAccepted:
    """Sends one transactional message at once; the same idempotency key answers the same."""
    _address_check(request, body)
    await asyncio.to_thread(_commit_key_check, db_session)
    try:
        answer = await _intake(request).submit(body)
    except NotificationError as error:
        raise HTTPException(error.status, str(error)) from None
    if answer.replayed:
        response.status_code = 200
    return answer


@router.post(
    "/messages:batch", response_model=BatchAnswer, dependencies=[require_scope("messages:write")]
)
def send_batch(body: MessageBatch, request: Request, db_session: DbSession) -> BatchAnswer:
    """Sends up to 500 transactional messages; each is answered (or refused) on its own."""
    for message in body.messages:
        _address_check(request, message)
    outcome = service.send_many(
        db_session=db_session,
        requests=body.messages,
        settings=_settings(request),
        now=clock.now(),
        limits=_limits(request),
    )
    results = [
        BatchItem(
            index=i, status=200 if outcome.answers[i].replayed else 201, message=outcome.answers[i]
        )
        if i in outcome.answers
        else BatchItem(
            index=i, status=service.error_status(outcome.errors[i]), error=outcome.errors[i]
        )
        for i in range(len(body.messages))
    ]
    return BatchAnswer(accepted=len(outcome.answers), refused=len(outcome.errors), results=results)


@router.get(
    "/messages/{message_id}",
    response_model=MessageStatus,
    dependencies=[require_scope("messages:read")],
)
def get_message(message_id: RowId, db_session: DbSession) -> MessageStatus:
    """A message's state and history: receipts and the times it changed (codes masked)."""
    try:
        return service.get_message(db_session=db_session, message_id=message_id)
    except NotificationError as error:
        raise HTTPException(error.status, str(error)) from None


@router.post(
    "/verifications/{verification_id}/check",
    response_model=VerificationResult,
    dependencies=[require_scope("messages:write")],
)
def check_verification(
    verification_id: str, body: VerificationCheck, request: Request, db_session: DbSession
) -> VerificationResult:
    """Checks a code typed by a person; wrong codes use up the verification's attempts."""
    _address_check(request)
    try:
        return service.check_code(
            db_session=db_session,
            verification_id=verification_id,
            code=body.code,
            settings=_settings(request),
            now=clock.now(),
        )
    except NotificationError as error:
        raise HTTPException(error.status, str(error)) from None
