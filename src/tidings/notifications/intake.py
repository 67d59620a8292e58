"""Gathers the `POST /api/v1/messages` requests (and batches) that arrive together into one
batch: one policy decision and one transaction for many requests, which is what lets one
process accept hundreds of messages a second. Each request waits for its own answer, given
only after the batch is committed, so an accepted message is never lost."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from tidings import clock
from tidings.config import Settings
from tidings.db import session_scope
from tidings.notifications import service
from tidings.notifications.schemas import MessageAccepted, MessageCreate
from tidings.notifications.throttle import VerificationLimits

MAX_BATCH = 500  # messages decided and written together (a request's batch is never split)
GATHER_SECONDS = 0.002  # how long the first request of a batch waits for company


@dataclass
class _Waiting:
    requests: Sequence[MessageCreate]
    outcome: asyncio.Future[service.Outcome]


class Intake:
    """One per application: the requests waiting, and one task that sends them in batches."""

    def __init__(self, engine: Engine, settings: Settings, limits: VerificationLimits) -> None:
        self.engine = engine
        self.settings = settings
        self.limits = limits
        self._waiting: deque[_Waiting] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: MessageCreate) -> MessageAccepted:
        """Sends one message with whatever else arrives; raises a NotificationError."""
        outcome = await self.submit_many([request])
        if 0 in outcome.errors:
            message = outcome.errors[0]
            raise service.NotificationError(message, status=service.error_status(message))
        return outcome.answers[0]

    async def submit_many(self, requests: Sequence[MessageCreate]) -> service.Outcome:
        """Sends messages with whatever else arrives: each one's answer or refusal, by
        position in `requests`."""
        loop = asyncio.get_running_loop()
        stale = self._task is None or self._task.done() or self._task.get_loop() is not loop
        if self._arrived is None or stale:
            # A sender per event loop: an application served again gets a fresh one.
            self._arrived = asyncio.Event()
            self._task = loop.create_task(self._run(self._arrived))
        outcome: asyncio.Future[service.Outcome] = loop.create_future()
        self._waiting.append(_Waiting(requests, outcome))
        self._arrived.set()
        return await outcome

    def _next_batch(self) -> list[_Waiting]:
        """The requests waiting longest, up to MAX_BATCH messages (at least one request)."""
        batch: list[_Waiting] = []
        size = 0
        while self._waiting and (not batch or size + len(self._waiting[0].requests) <= MAX_BATCH):
            batch.append(self._waiting.popleft())
            size += len(batch[-1].requests)
        return batch

    async def _run(self, arrived: asyncio.Event) -> None:
        while True:
            await arrived.wait()
            await asyncio.sleep(GATHER_SECONDS)
            batch = self._next_batch()
            if not self._waiting:
                arrived.clear()
            requests = [request for waiting in batch for request in waiting.requests]
            try:
                outcome = await asyncio.to_thread(self._send, requests)
            except Exception as error:  # the store failed: every request of the batch hears it
                for waiting in batch:
                    if not waiting.outcome.done():
                        waiting.outcome.set_exception(error)
                continue
            start = 0
            for waiting in batch:
                if not waiting.outcome.done():
                    waiting.outcome.set_result(_part(outcome, start, len(waiting.requests)))
                start += len(waiting.requests)

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


def _part(outcome: service.Outcome, start: int, size: int) -> service.Outcome:
    """The answers and refusals of positions start .. start + size, counted from 0."""
    part = service.Outcome()
    for index in range(size):
        if start + index in outcome.answers:
            part.answers[index] = outcome.answers[start + index]
        else:
            part.errors[index] = outcome.errors[start + index]
    return part
