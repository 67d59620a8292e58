"""`POST /api/v1/messages` and its batch form in an express lane: the busiest routes of the
API, answered ahead of the middleware stack, as the short-link redirect is.

A well-formed request (a live key holding messages:write, remembered by `ApiKeyCache`, and
a JSON body of a valid message or batch) goes straight to the intake, and its answer is the
route's, byte for byte. Any other request (no key, a wrong one, a bad or unusual body) goes
on to the application with its body untouched, so that its refusal reads exactly as the
rest of the API's do. The routes stay declared in `notifications.api`: that is what the
OpenAPI document shows and what answers those requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.http import ApiKeyCache, problem, status_title
from tidings.notifications.api import address_refusal, batch_answer, intake_of
from tidings.notifications.rendering import NotificationError
from tidings.notifications.schemas import MessageBatch, MessageCreate

ONE = "/api/v1/messages"
BATCH = "/api/v1/messages:batch"
SCOPE = "messages:write"
MAX_BODY = 1024 * 1024  # bytes; a longer body goes the long way
JSON_TYPE = b"application/json"


def _bearer_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The bearer key of a request the lane may take (a JSON body of a known, modest
    length), or None."""
    key = length = None
    json_body = False
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        elif name == b"content-type":
            json_body = value.split(b";")[0].strip().lower() == JSON_TYPE
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    if not key or not json_body or length is None or not 0 < length <= MAX_BODY:
        return None
    return key


async def _body(receive: Receive) -> bytes | None:
    """The request's body, or None when the client went away before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` first, then whatever the client sends next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class ExpressLane:
    """Answers well-formed sends for one application; passes everything else on."""

    def __init__(self, app: ASGIApp, application: FastAPI) -> None:
        self.app = app
        self.state = application.state
        self.keys = ApiKeyCache(application.state.engine)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else None
        if path not in (ONE, BATCH) or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = _bearer_key(scope["headers"])
        grant = await self.keys.check(key) if key is not None else None
        if grant is None or not grant.holds(SCOPE):
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        if body is None:
            return
        try:
            if path == ONE:
                one = MessageCreate.model_validate(json.loads(body))
            else:
                batch = MessageBatch.model_validate(json.loads(body))
        except (ValueError, ValidationError):  # the application says what is wrong
            await self.app(scope, _replaying(body, receive), send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        if path == ONE:
            await self._send_one(one, client, send)
        else:
            await self._send_batch(batch, client, send)

    async def _send_one(self, message: MessageCreate, client: str, send: Send) -> None:
        refusal = address_refusal(self.state, client, [message])
        if refusal is not None:
            await _problem(send, 429, refusal)
            return
        try:
            answer = await intake_of(self.state).submit(message)
        except NotificationError as error:
            await _problem(send, error.status, str(error))
            return
        await _json(send, 200 if answer.replayed else 201, answer)

    async def _send_batch(self, batch: MessageBatch, client: str, send: Send) -> None:
        refusal = address_refusal(self.state, client, batch.messages)
        if refusal is not None:
            await _problem(send, 429, refusal)
            return
        outcome = await intake_of(self.state).submit_many(batch.messages)
        await _json(send, 200, batch_answer(outcome, len(batch.messages)))


async def _json(send: Send, status: int, answer: BaseModel) -> None:
    body = answer.model_dump_json(by_alias=True).encode()
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", JSON_TYPE)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, status: int, detail: str) -> None:
    response = problem(status, status_title(status), detail)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def install_express_lane(app: FastAPI) -> ExpressLane:
    """Answers well-formed `POST /api/v1/messages` (and :batch) on `app` ahead of everything
    else, the short-link redirect included."""
    build: Callable[[], ASGIApp] = app.build_middleware_stack
    lane = ExpressLane(app, app)

    def build_with_express_lane() -> ASGIApp:
        # Starlette builds its middleware stack on the first request; the lane goes around
        # all of it, whatever middleware is added after this call.
        lane.app = build()
        return lane

    app.build_middleware_stack = build_with_express_lane  # type: ignore[method-assign]
    return lane
