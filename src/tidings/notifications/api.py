"""REST endpoints of transactional messages: send one or a batch, read one, check a code."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy.orm import Session
from starlette.datastructures import State

from tidings import clock
from tidings.config import Settings, get_settings
from tidings.http import DbSession, RowId, commit_last_use, require_scope
from tidings.notifications import service
from tidings.notifications.intake import Intake
from tidings.notifications.models import NotificationKind
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
from tidings.notifications.sending import Outcome
from tidings.notifications.throttle import VerificationLimits

router = APIRouter(tags=["messages"])


def settings_of(state: State) -> Settings:
    """The application's settings (a test may set its own on `app.state.settings`)."""
    return getattr(state, "settings", None) or get_settings()


def limits_of(state: State) -> VerificationLimits:
    """The application's limits on verification codes, made on first use."""
    if getattr(state, "verification_limits", None) is None:
        state.verification_limits = VerificationLimits(settings_of(state))
    limits: VerificationLimits = state.verification_limits
    return limits


def intake_of(state: State) -> Intake:
    """The application's intake of transactional messages, made on first use."""
    if getattr(state, "message_intake", None) is None:
        state.message_intake = Intake(state.engine, settings_of(state), limits_of(state))
    intake: Intake = state.message_intake
    return intake


def address_refusal(state: State, client: str, messages: Sequence[MessageCreate]) -> str | None:
    """Why the client at `client` may not ask for these codes now, or None; each
    verification among `messages` counts once against the address, up to the first refused."""
    for message in messages:
        if message.kind is NotificationKind.VERIFICATION:
            refusal = limits_of(state).address_refusal(client)
            if refusal is not None:
                return refusal
    return None


def batch_answer(outcome: Outcome, size: int) -> BatchAnswer:
    """The answer of a batch of `size` messages from its outcome."""
    results = [
        BatchItem(
            index=i, status=200 if outcome.answers[i].replayed else 201, message=outcome.answers[i]
        )
        if i in outcome.answers
        else BatchItem(
            index=i, status=service.error_status(outcome.errors[i]), error=outcome.errors[i]
        )
        for i in range(size)
    ]
    return BatchAnswer(accepted=len(outcome.answers), refused=len(outcome.errors), results=results)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _release(db_session: Session) -> None:
    """Commits the key's last-used time and gives the connection back before the messages
    wait for their batch: requests in flight would otherwise hold one each and outgrow the
    pool, and on SQLite a read left open would make that late commit fail."""
    commit_last_use(db_session)
    db_session.close()


# The two routes below are answered by `express.ExpressLane` when the request is well formed;
# they answer the rest (no key, a key without the scope, a bad body) and describe the API.
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
    state = request.app.state
    refusal = address_refusal(state, _client(request), [body])
    if refusal is not None:
        raise HTTPException(429, refusal)
    await asyncio.to_thread(_release, db_session)
    try:
        answer = await intake_of(state).submit(body)
    except NotificationError as error:
        raise HTTPException(error.status, str(error)) from None
    if answer.replayed:
        response.status_code = 200
    return answer


@router.post(
    "/messages:batch", response_model=BatchAnswer, dependencies=[require_scope("messages:write")]
)
async def send_batch(body: MessageBatch, request: Request, db_session: DbSession) -> BatchAnswer:
    """Sends up to 500 transactional messages; each is answered (or refused) on its own."""
    state = request.app.state
    refusal = address_refusal(state, _client(request), body.messages)
    if refusal is not None:
        raise HTTPException(429, refusal)
    await asyncio.to_thread(_release, db_session)
    outcome = await intake_of(state).submit_many(body.messages)
    return batch_answer(outcome, len(body.messages))


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
    refusal = limits_of(request.app.state).address_refusal(_client(request))
    if refusal is not None:
        raise HTTPException(429, refusal)
    try:
        return service.check_code(
            db_session=db_session,
            verification_id=verification_id,
            code=body.code,
            settings=settings_of(request.app.state),
            now=clock.now(),
        )
    except NotificationError as error:
        raise HTTPException(error.status, str(error)) from None
