"""`GET /s/{code}`: the short-link redirect, kept lean because it is the busiest path.

It is a plain Starlette route ahead of the API's routes: no dependency injection, no session.
The target of a code comes from a bounded in-process cache (a miss reads the store on a
worker thread); the click goes to the `ClickWriter`, which writes it within a flush interval,
so the answer never waits for a commit. An unknown or malformed code answers 404 with a
short page and records nothing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tidings import clock
from tidings.config import Settings
from tidings.tracking.clicks import ClickRecord, ClickWriter
from tidings.tracking.codes import is_well_formed
from tidings.tracking.robots import robot_reason

PATH = "/s/{code}"
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
_NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


class LinkCache:
    """The targets of recently used codes, at most `size` of them (least recently used go)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._links: OrderedDict[str, tuple[int, str]] = OrderedDict()

    def get(self, code: str) -> tuple[int, str] | None:
        """The link id and target of `code`, if remembered."""
        found = self._links.get(code)
        if found is not None:
            self._links.move_to_end(code)
        return found

    def put(self, code: str, link: tuple[int, str]) -> None:
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


class Redirector:
    """Answers short-link requests for one application: cache, look-up and click writer."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.cache = LinkCache(settings.short_link_cache_size)
        self.clicks = ClickWriter(engine, flush_seconds=settings.click_flush_seconds)

    async def answer(self, request: Request) -> Response:
        """Redirects to the code's target and records the click, or answers 404."""
        code = request.path_params["code"]
        link = self.cache.get(code) if is_well_formed(code) else None
        if link is None and is_well_formed(code):
            link = await asyncio.to_thread(find_link, self.engine, code)
            if link is not None:
                self.cache.put(code, link)
        if link is None:
            return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=_NO_STORE)
        link_id, target = link
        headers = request.headers
        agent = headers.get("user-agent")
        reason = robot_reason(request.method, agent, headers)
        self.clicks.record(ClickRecord(link_id, clock.now(), agent, reason))
        return Response(status_code=302, headers={**_NO_STORE, "location": target})


def install_short_links(app: FastAPI, settings: Settings) -> Redirector:
    """Serves `/s/{code}` on `app` ahead of its other routes, and writes the waiting clicks
    when the application stops."""
    redirector = Redirector(app.state.engine, settings)
    app.router.routes.insert(
        0, Route(PATH, redirector.answer, methods=["GET", "HEAD"], include_in_schema=False)
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        try:
            async with inner(application) as state:
                yield state
        finally:
            await asyncio.to_thread(redirector.clicks.close)

    app.router.lifespan_context = lifespan
    app.state.short_links = redirector
    return redirector
