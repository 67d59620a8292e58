"""Shared pieces of the HTTP API: the store session, API-key auth and problem+json errors."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings import clock
from tidings.accounts import service as accounts
from tidings.accounts.models import ApiKey
from tidings.accounts.scopes import grants
from tidings.db import is_sqlite, session_factory

PROBLEM_JSON = "application/problem+json"
MAX_PER_PAGE = 200  # rows per page of any list endpoint
MAX_ROW_ID = 2**63 - 1  # the largest id a store's BIGINT (and SQLite's INTEGER) holds
MAX_CENTS = 10**12  # ten billion yuan: more than any one order, coupon or spend threshold
# How long a key checked against the store is trusted by the routes that use `ApiKeyCache`:
# a key revoked meanwhile is refused there within this time.
API_KEY_TRUSTED_FOR = timedelta(seconds=5)
API_KEY_CACHE_SIZE = 1024  # keys remembered at once

ItemT = TypeVar("ItemT")

# An id in a path: beyond a 64-bit integer no row can match, so it is refused as invalid
# instead of reaching the store, whose driver cannot even send it.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row's id.")]


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Builds an RFC 9457 problem response a person can act on."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Makes every error answer as application/problem+json."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = problem(error.status_code, status_title(error.status_code), str(error.detail))
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": list(item["loc"]), "message": item["msg"]} for item in error.errors()
        ]
        detail = "; ".join(
            f"{'.'.join(str(part) for part in e['location'])}: {e['message']}" for e in errors
        )
        return problem(422, "Invalid request", detail, errors=errors)


def status_title(status: int) -> str:
    """The title of a problem answered with `status`: its standard phrase."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def get_db_session(request: Request) -> Iterator[Session]:
    """Opens a session for one request and commits it when the endpoint succeeds."""
    engine: Engine = request.app.state.engine
    with session_factory(engine)() as db_session:
        try:
            yield db_session
            db_session.commit()
        except BaseException:
            db_session.rollback()
            raise


# Committed before the response goes: a browser that follows a redirect after a form (or a
# client that reads back what it wrote) must see the write. FastAPI's default ("request")
# would commit only after the response was sent.
DbSession = Annotated[Session, Depends(get_db_session, scope="function")]


# Declared as a security scheme so that /docs offers to send a key ("Authorize"); the key
# is checked below, with a message that says how to get one.
bearer_key = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (tidings apikey create NAME), sent as 'Authorization: Bearer <key>'.",
)


def require_api_key(
    db_session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_key)],
) -> ApiKey:
    """Checks 'Authorization: Bearer <key>' and returns the key, or answers 401."""
    key = credentials.credentials if credentials is not None else ""
    if not key.strip():
        raise HTTPException(
            401,
            "send an API key as 'Authorization: Bearer <key>'"
            " (create one with: tidings apikey create NAME)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    api_key = accounts.authenticate(db_session=db_session, key=key.strip())
    if api_key is None:
        raise HTTPException(
            401, "this API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    return api_key


Authenticated = Annotated[ApiKey, Depends(require_api_key)]


@dataclass(frozen=True)
class KeyGrant:
    """A live API key as the cache remembers it: its name and scopes."""

    name: str
    scopes: tuple[str, ...]

    def holds(self, scope: str) -> bool:
        """Tells whether the key may use `scope`."""
        return grants(list(self.scopes), scope)


class ApiKeyCache:
    """Live API keys recently checked against the store, by their hash, each trusted for
    API_KEY_TRUSTED_FOR: the busiest routes check a key without a read of the store, and a
    key revoked meanwhile is refused within that time. Unknown keys are not remembered."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._keys: OrderedDict[str, tuple[KeyGrant, datetime]] = OrderedDict()

    async def check(self, key: str) -> KeyGrant | None:
        """The live key `key` is, or None; the store is asked when the cache cannot say."""
        digest = accounts.hash_key(key)
        remembered = self._keys.get(digest)
        now = clock.now()
        if remembered is not None and timedelta(0) <= now - remembered[1] < API_KEY_TRUSTED_FOR:
            return remembered[0]
        grant = await asyncio.to_thread(self._authenticate, key)
        if grant is None:
            self._keys.pop(digest, None)
            return None
        self._keys[digest] = (grant, now)
        self._keys.move_to_end(digest)
        while len(self._keys) > API_KEY_CACHE_SIZE:
            self._keys.popitem(last=False)
        return grant

    def _authenticate(self, key: str) -> KeyGrant | None:
        with session_factory(self.engine)() as db_session:
            api_key = accounts.authenticate(db_session=db_session, key=key)
            if api_key is None:
                return None
            grant = KeyGrant(name=api_key.name, scopes=tuple(api_key.scopes or []))
            commit_last_use(db_session)
        return grant


def commit_last_use(db_session: Session) -> None:
    """Commits a key's last-used time. On SQLite a write since the key was read makes that
    stamp fail; the key was checked, so the request goes on and a later one stamps it."""
    try:
        db_session.commit()
    except OperationalError:
        if not is_sqlite(db_session):
            raise
        db_session.rollback()


def require_scope(scope: str) -> Any:
    """A route dependency that lets through only keys holding `scope`; others get 403."""

    def check_scope(api_key: Authenticated) -> ApiKey:
        if not grants(list(api_key.scopes or []), scope):
            raise HTTPException(
                403,
                f"the API key '{api_key.name}' lacks the scope '{scope}'; create a key that"
                f" holds it: tidings apikey create NAME --scope {scope}",
            )
        return api_key

    return Depends(check_scope)


class Paging(BaseModel):
    """Which page of a list to answer: `page` counts from 1, `per_page` rows each."""

    page: int = Field(1, ge=1, le=100_000, description="The page, counting from 1.")
    per_page: int = Field(25, ge=1, le=MAX_PER_PAGE, description="Rows per page.")

    def next_link(self, request: Request, has_more: bool) -> str | None:
        """The URL of the next page (same filters), or None on the last page."""
        if not has_more:
            return None
        return str(request.url.include_query_params(page=self.page + 1, per_page=self.per_page))


PagingQuery = Annotated[Paging, Query()]


class Page(BaseModel, Generic[ItemT]):
    """One page of a list: its rows, and the link to the next page when there is one."""

    items: list[ItemT]
    page: int
    per_page: int
    next: str | None = Field(None, description="URL of the next page; null on the last page.")
