"""Gathers the single `POST /api/v1/messages` requests that arrive together into one batch:
one policy decision and one transaction for many requests, which is what lets one process
accept hundreds of messages a second. Each request waits for its own answer, given only
after the batch is committed, so an accepted message is never lost."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import Engine

from tidings import clock
from tidings.config import Settings
from tidings.db import session_scope
from tidings.notifications import service
from tidings.notifications.schemas import MessageAccepted, MessageCreate
from tidings.notifications.throttle import VerificationLimits

MAX_BATCH = 200  # requests decided and written together
GATHER_SECONDS = 0.002  # how long the first request of a batch waits for company


@dataclass
class _Waiting:
    request: MessageCreate
    answer: asyncio.Future[MessageAccepted]


class Intake:
    """One per application: a queue of requests and one task that sends them in batches."""

    def __init__(self, engine: Engine, settings: Settings, limits: VerificationLimits) -> None:
        self.engine = engine
        self.settings = settings
        self.limits = limits
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: MessageCreate) -> MessageAccepted:
        """Sends one message with whatever else arrives; raises a NotificationError."""
        loop = asyncio.get_running_loop()
        stale = self._task is None or self._task.done() or self._task.get_loop() is not loop
        if self._queue is None or stale:
            # A sender per event loop: an application served again gets a fresh one.
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue))
        answer: asyncio.Future[MessageAccepted] = loop.create_future()
        await self._queue.put(_Waiting(request, answer))
        return await answer

    async def _run(self, queue: asyncio.Queue[_Waiting]) -> None:
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(GATHER_SECONDS)
            while not queue.empty() and len(batch) < MAX_BATCH:
                batch.append(queue.get_nowait())
            try:
                outcome = await asyncio.to_thread(self._send, [w.request for w in batch])
            except Exception as error:  # the store failed: every request of the batch hears it
                for waiting in batch:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(error)
                continue
            for index, waiting in enumerate(batch):
                if waiting.answer.done():
                    continue
                if index in outcome.errors:
                    message = outcome.errors[index]
                    status = service.error_status(message)
                    waiting.answer.set_exception(service.NotificationError(message, status=status))
                else:
                    waiting.answer.set_result(outcome.answers[index])

    def _send(self, requests: list[MessageCreate]) -> service.Outcome:
        # Read and decide first, then write in a short transaction of its own: SQLite holds
        # its one write lock only for the inserts, not while the policy decides.
        now = clock.now()
        with session_scope(self.engine) as session:
            pending = service.prepare_many(
                db_session=session,
                requests=requests,
                settings=self.settings,
                now=now,
                limits=self.limits,
            )
        with session_scope(self.engine) as session:
            return service.write_many(
                db_session=session, pending=pending, settings=self.settings, now=now
            )
