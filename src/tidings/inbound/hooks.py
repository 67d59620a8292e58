"""Provider callbacks at /hooks/{provider_type}/{account}: verified by the provider's
signature or the account's secret, read into receipts and replies, stored, acknowledged in
the provider's own words. A request that fails the check or cannot be read gets a 4xx and
changes nothing; a repeat changes nothing either (receipts and replies are idempotent)."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

import stamina
from fastapi import APIRouter, BackgroundTasks, Request, Response
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from tidings import clock
from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.dispatch.models import DeliveryReceipt
from tidings.dispatch.receipts import ReceiptError, apply_receipts, attach_early_receipts
from tidings.http import problem
from tidings.inbound.service import store_replies
from tidings.providers.base import Receipt, UnknownProvider, get_provider
from tidings.providers.webhooks import (
    CallbackHandler,
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    ProviderAccountError,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/hooks", tags=["hooks"])
REMATCH_DELAYS = (0.2, 0.5, 1.0, 2.0)  # seconds before each new look at unmatched receipts
_TOKEN = re.compile(r"(token=)[^&\s\"]+")


class RedactCallbackTokens(logging.Filter):
    """Masks ?token=... in access logs: a callback URL carries the account's secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def install_log_redaction() -> None:
    """Adds the token mask to the access log once."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCallbackTokens) for f in access.filters):
        access.addFilter(RedactCallbackTokens())


def _handler(request: Request, provider_type: str, account: str) -> CallbackHandler:
    settings: Settings = getattr(request.app.state, "settings", None) or get_settings()
    config = settings.provider_accounts.get(account)
    if config is None or config.get("type") != provider_type:
        raise CallbackRejected(404, f"no {provider_type} provider account named {account!r}")
    cache: dict[str, Any] | None = getattr(request.app.state, "hook_providers", None)
    if cache is None:
        cache = request.app.state.hook_providers = {}
    provider = cache.get(account)
    if provider is None:
        try:
            provider = get_provider(account, settings)
        except (UnknownProvider, ProviderAccountError) as error:
            raise CallbackRejected(404, str(error)) from None
        cache[account] = provider
    if not isinstance(provider, CallbackHandler):
        raise CallbackRejected(404, f"provider account {account!r} takes no callbacks")
    return provider


def _store(request: Request, result: CallbackResult) -> None:
    # On SQLite a transaction that read before a concurrent commit cannot then write
    # ('database is locked' at once, whatever the busy timeout). Storing is idempotent, so
    # it is simply done again on a fresh snapshot.
    for attempt in stamina.retry_context(
        on=_snapshot_conflict, attempts=10, wait_initial=0.01, wait_max=0.5
    ):
        with attempt, session_scope(request.app.state.engine) as session:
            now = clock.now()
            if result.receipts:
                apply_receipts(db_session=session, receipts=result.receipts, now=now)
            if result.replies:
                store_replies(db_session=session, replies=result.replies, now=now)


def _unmatched(engine: Engine, receipts: Sequence[Receipt]) -> dict[str, list[str]]:
    """The receipts of this callback that name no message yet, by provider."""
    table = DeliveryReceipt.__table__
    wanted: dict[str, set[str]] = {}
    for receipt in receipts:
        wanted.setdefault(receipt.provider, set()).add(receipt.provider_message_id)
    left: dict[str, list[str]] = {}
    with session_scope(engine) as session:
        for provider, pmids in wanted.items():
            rows = session.execute(
                select(table.c.provider_message_id).where(
                    table.c.message_id.is_(None),
                    table.c.provider == provider,
                    table.c.provider_message_id.in_(sorted(pmids)),
                )
            ).scalars()
            found = sorted(set(rows))
            if found:
                left[provider] = found
    return left


def _attach(engine: Engine, provider: str, pmids: list[str]) -> None:
    with session_scope(engine) as session:
        attach_early_receipts(
            db_session=session, provider=provider, provider_message_ids=pmids, now=clock.now()
        )


async def rematch_receipts(engine: Engine, receipts: Sequence[Receipt]) -> None:
    """Matches again, a little later, receipts that named no message when they arrived.

    A receipt can race the worker recording the provider's answer: each transaction misses
    the other's uncommitted row (PostgreSQL, read committed), and the worker's check for
    early receipts has already run. The worker's transaction is short, so looking again
    after it committed settles the message.
    """
    for delay in REMATCH_DELAYS:
        await asyncio.sleep(delay)
        left = await run_in_threadpool(_unmatched, engine, receipts)
        if not left:
            return
        for provider, pmids in left.items():
            await run_in_threadpool(_attach, engine, provider, pmids)


def _snapshot_conflict(error: Exception) -> bool:
    # Bulk writes use the driver's connection, so the error may be sqlite3's own.
    locked = (OperationalError, sqlite3.OperationalError)
    return isinstance(error, locked) and "database is locked" in str(error)


@router.post("/{provider_type}/{account}", include_in_schema=False)
async def receive_callback(
    provider_type: str, account: str, request: Request, background: BackgroundTasks
) -> Response:
    """Takes a provider's receipts and replies for `account`."""
    body = await request.body()
    callback = CallbackRequest(
        method=request.method,
        url=str(request.url),
        headers={name.lower(): value for name, value in request.headers.items()},
        query=dict(request.query_params),
        body=body,
    )
    try:
        result = _handler(request, provider_type, account).handle_callback(callback)
        await run_in_threadpool(_store, request, result)
    except CallbackRejected as error:
        log.warning("callback to %s/%s refused: %s", provider_type, account, error.reason)
        return problem(error.status, "Callback refused", error.reason)
    except ReceiptError as error:
        return problem(400, "Callback refused", str(error))
    if result.receipts:
        background.add_task(rematch_receipts, request.app.state.engine, result.receipts)
    return Response(result.body, media_type=result.media_type)
