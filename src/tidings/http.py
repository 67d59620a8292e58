"""Shared pieces of the HTTP API: the store session, API-key auth and problem+json errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.accounts import service as accounts
from tidings.accounts.models import ApiKey
from tidings.db import session_factory

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Builds an RFC 9457 problem response a person can act on."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Makes every error answer as application/problem+json."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = problem(error.status_code, _title(error.status_code), str(error.detail))
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


def _title(status: int) -> str:
    from http import HTTPStatus

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


DbSession = Annotated[Session, Depends(get_db_session)]


def require_api_key(request: Request, db_session: DbSession) -> ApiKey:
    """Checks 'Authorization: Bearer <key>' and returns the key, or answers 401."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
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
