"""Provider callbacks at /hooks/{provider_type}/{account}: verified by the provider's
signature or the account's secret, read into receipts and replies, stored, acknowledged in
the provider's own words. A request that fails the check or cannot be read gets a 4xx and
changes nothing; a repeat changes nothing either (receipts and replies are idempotent)."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from typing import Any

import stamina
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from tidings import clock
from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.dispatch.receipts import ReceiptError, apply_receipts
from tidings.http import problem
from tidings.inbound.service import store_replies
from tidings.providers.base import UnknownProvider, get_provider
from tidings.providers.webhooks import (
    CallbackHandler,
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    ProviderAccountError,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/hooks", tags=["hooks"])
_TOKEN = re.compile(r"(token=)[^&\s\"]+")
_SQLITE_WRITER = threading.Lock()


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
    settings = _settings(request)
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


def _settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


def _store(request: Request, result: CallbackResult) -> None:
    # SQLite has one writer: callbacks of this process take turns rather than collide and
    # retry (handling a batch of replies reads before it writes).
    engine = request.app.state.engine
    if engine.dialect.name == "sqlite":
        with _SQLITE_WRITER:
            _store_once(request, result)
    else:
        _store_once(request, result)


def _store_once(request: Request, result: CallbackResult) -> None:
    # On SQLite a transaction that read before a concurrent commit (another process's)
    # cannot then write ('database is locked' at once, whatever the busy timeout). Storing
    # is idempotent, so it is simply done again on a fresh snapshot.
    for attempt in stamina.retry_context(
        on=_snapshot_conflict, attempts=10, wait_initial=0.01, wait_max=0.5
    ):
        with attempt, session_scope(request.app.state.engine) as session:
            now = clock.now()
            if result.receipts:
                apply_receipts(db_session=session, receipts=result.receipts, now=now)
            if result.replies:
                store_replies(
                    db_session=session,
                    replies=result.replies,
                    now=now,
                    settings=_settings(request),
                )


def _snapshot_conflict(error: Exception) -> bool:
    # Bulk writes use the driver's connection, so the error may be sqlite3's own.
    locked = (OperationalError, sqlite3.OperationalError)
    return isinstance(error, locked) and "database is locked" in str(error)


@router.post("/{provider_type}/{account}", include_in_schema=False)
async def receive_callback(provider_type: str, account: str, request: Request) -> Response:
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
    return Response(result.body, media_type=result.media_type)
