"""`GET /s/{code}`: the short-link redirect, kept lean because it is the busiest path.

It is a plain ASGI application ahead of the API's middleware and routes: no dependency
injection, no session. The target of a code comes from a bounded in-process cache, or else
from the store (`LinkFinder`); the click goes to the `ClickWriter`, which writes it within a
flush interval, so the answer never waits for a commit. An unknown or malformed code answers
404 with a short page and records nothing.
"""

from __future__ import annotations

import asyncio
import gc
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, text
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings import clock
from tidings.config import Settings
from tidings.tracking.clicks import ClickRecord, ClickWriter
from tidings.tracking.codes import is_well_formed
from tidings.tracking.robots import PREFETCH_HEADERS, robot_reason

PREFIX = "/s/"
FIND_SQL = "SELECT id, target_url FROM short_links WHERE code = ?"
NOT_FOUND_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>链接无效 · Link not found</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto; padding: 0 1em">
<h1>链接无效或已失效</h1>
<p>这个短链接不存在。请检查短信里的链接是否完整，或直接联系门店。</p>
<p lang="en">This short link does not exist. Check that the link from the text message is
complete, or ask the store.</p>
</body></html>
"""
NOT_FOUND_BODY = NOT_FOUND_PAGE.encode()
REDIRECT_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-length", b"0"),
]
NOT_FOUND_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"content-length", str(len(NOT_FOUND_BODY)).encode()),
]
PREFETCH_NAMES = frozenset(name.encode() for name, _ in PREFETCH_HEADERS)


class LinkCache:
    """The targets of recently used codes, at most `size` of them (least recently used go)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._links: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    def get(self, code: str) -> tuple[int, bytes] | None:
        """The link id and target of `code`, if remembered."""
        found = self._links.get(code)
        if found is not None:
            self._links.move_to_end(code)
        return found

    def put(self, code: str, link: tuple[int, bytes]) -> None:
        """Remembers a code's link id and target."""
        self._links[code] = link
        self._links.move_to_end(code)
        while len(self._links) > self.size:
            self._links.popitem(last=False)


def find_link(engine: Engine, code: str) -> tuple[int, str] | None:
    """The id and target of the link with `code`, read from the store, or None."""
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT id, target_url FROM short_links WHERE code = :code"), {"code": code}
        ).first()
    return None if row is None else (int(row[0]), str(row[1]))


class LinkFinder:
    """Reads links the cache does not hold. Most clicks are the first on their link, so this
    is the common path: on SQLite an indexed read of a local file takes microseconds and runs
    at once on a connection of its own; on PostgreSQL it goes to a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Any = None

    async def find(self, code: str) -> tuple[int, str] | None:
        """The id and target of the link with `code`, or None."""
        if self.engine.dialect.name != "sqlite":
            return await asyncio.to_thread(find_link, self.engine, code)
        if self._connection is None:
            self._connection = self.engine.raw_connection()
        row = self._connection.driver_connection.execute(FIND_SQL, (code,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def close(self) -> None:
        """Gives the connection back (when the application stops)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class Redirector:
    """Answers short-link requests for one application: cache, look-up and click writer.

    A plain ASGI application in front of the whole middleware stack: a redirect needs none
    of it (no session, no key, no console), and skipping it halves the work per request.
    """

    def __init__(self, app: ASGIApp, engine: Engine, settings: Settings) -> None:
        self.app = app
        self.engine = engine
        self.cache = LinkCache(settings.short_link_cache_size)
        self.finder = LinkFinder(engine)
        self.clicks = ClickWriter(engine, flush_seconds=settings.click_flush_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        code = scope["path"][len(PREFIX) :]
        link = await self.link(code) if is_well_formed(code) else None
        if link is None:
            await _answer(send, 404, NOT_FOUND_HEADERS, NOT_FOUND_BODY)
            return
        link_id, target = link
        agent, signals = _request_signals(scope["headers"])
        reason = robot_reason(scope["method"], agent, signals)
        self.clicks.record(ClickRecord(link_id, clock.now(), agent, reason))
        await _answer(send, 302, [*REDIRECT_HEADERS, (b"location", target)], b"")

    async def link(self, code: str) -> tuple[int, bytes] | None:
        """The link id and target of a well-formed code, from the cache or the store."""
        link = self.cache.get(code)
        if link is None:
            found = await self.finder.find(code)
            if found is not None:
                link = (found[0], found[1].encode())
                self.cache.put(code, link)
        return link


def _request_signals(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, dict[str, str]]:
    """The user agent and any prefetch headers of a request, from its raw ASGI headers."""
    agent = None
    signals: dict[str, str] = {}
    for name, value in headers:
        if name == b"user-agent":
            agent = value.decode("latin-1")
        elif name in PREFETCH_NAMES:
            signals[name.decode()] = value.decode("latin-1")
    return agent, signals


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_short_links(app: FastAPI, settings: Settings) -> Redirector:
    """Serves `/s/{code}` on `app` ahead of everything else, and writes the waiting clicks
    when the application stops."""
    build = app.build_middleware_stack
    redirector = Redirector(app, app.state.engine, settings)

    def build_with_short_links() -> ASGIApp:
        # Starlette builds its middleware stack on the first request; the redirector goes
        # around all of it, whatever middleware is added after this call.
        redirector.app = build()
        return redirector

    app.build_middleware_stack = build_with_short_links  # type: ignore[method-assign]
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        try:
            async with inner(application) as state:
                # Everything loaded so far lives as long as the process: keep it out of the
                # collector's full passes, which otherwise stall every request for tens of
                # milliseconds now and then (the redirect's p99).
                gc.freeze()
                yield state
        finally:
            redirector.finder.close()
            await asyncio.to_thread(redirector.clicks.close)

    app.router.lifespan_context = lifespan
    app.state.short_links = redirector
    return redirector
