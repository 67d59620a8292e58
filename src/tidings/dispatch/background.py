"""The dispatcher inside `tidings serve`: a worker on a thread of its own with its own loop,
started and stopped with the application's lifespan."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from tidings.config import Settings
from tidings.dispatch.worker import Worker

log = logging.getLogger(__name__)
STOP_GRACE = 10.0  # seconds given to the batches in hand when the server stops


class BackgroundWorker:
    """Runs a Worker until stopped, beside the HTTP server of the same process."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.worker = Worker(engine, settings=settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="tidings-dispatcher", daemon=True)

    @classmethod
    def start(cls, engine: Engine, settings: Settings) -> BackgroundWorker:
        """Starts a dispatcher thread and returns its handle."""
        background = cls(engine, settings)
        background._thread.start()
        return background

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.worker.run())
        except Exception:
            log.exception("the in-process dispatcher stopped on an error")
        finally:
            self._loop.close()

    def stop(self) -> None:
        """Asks the dispatcher to finish the batches in hand and waits for it."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.worker.stop)
            self._thread.join(STOP_GRACE)


def run_dispatcher_with(app: FastAPI, settings: Settings) -> None:
    """Makes `app` start a dispatcher on its store when it starts, and stop it when it stops."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        background = BackgroundWorker.start(application.state.engine, settings)
        try:
            async with inner(application) as state:
                yield state
        finally:
            await asyncio.to_thread(background.stop)

    app.router.lifespan_context = lifespan
