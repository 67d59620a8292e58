"""Event batches from concurrent requests, recorded together (a group commit).

Firing costs about the same for one event as for a thousand, so batches that arrive while
another is being recorded wait, and the next writer takes all of them in one pass: stored,
fired and committed together, each request answered with its own counts. One writer at a time
per store in this process also suits SQLite, which has one writer; a transaction whose
snapshot went stale (another process wrote after it read) is run again, since recording is
idempotent.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import stamina
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from tidings.db import session_scope
from tidings.triggers import reactions
from tidings.triggers.schemas import EventIn, EventsResult


@dataclass
class _Waiting:
    """One request's batch, and what became of it."""

    batch: Sequence[EventIn]
    result: EventsResult | None = None
    error: BaseException | None = None
    done: bool = False


class EventIntake:
    """The batches waiting to be recorded on one store, and the turn to record them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.waiting: list[_Waiting] = []
        self.queue_lock = threading.Lock()
        self.writer = threading.Lock()

    def record(self, batch: Sequence[EventIn], *, now: datetime) -> EventsResult:
        """Records a batch, together with any waiting beside it; returns its own counts."""
        mine = _Waiting(batch)
        with self.queue_lock:
            self.waiting.append(mine)
        with self.writer:
            if not mine.done:
                with self.queue_lock:
                    group, self.waiting = self.waiting, []
                self._record(group, now=now)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _record(self, group: list[_Waiting], *, now: datetime) -> None:
        try:
            for attempt in stamina.retry_context(
                on=snapshot_conflict, attempts=10, wait_initial=0.01, wait_max=0.5
            ):
                with attempt, session_scope(self.engine) as session:
                    results = reactions.record_events(
                        session, batches=[w.batch for w in group], now=now
                    )
            for waiting, result in zip(group, results, strict=True):
                waiting.result = result
        except Exception as error:
            for waiting in group:
                waiting.error = error
        finally:
            for waiting in group:
                waiting.done = True


def snapshot_conflict(error: Exception) -> bool:
    """Whether SQLite refused a write because the transaction's snapshot went stale."""
    # Bulk writes use the driver's connection, so the error may be sqlite3's own.
    locked = (OperationalError, sqlite3.OperationalError)
    return isinstance(error, locked) and "database is locked" in str(error)


_intakes: dict[int, EventIntake] = {}
_intakes_lock = threading.Lock()


def intake_for(engine: Engine) -> EventIntake:
    """The intake of a store (one per engine in this process)."""
    with _intakes_lock:
        return _intakes.setdefault(id(engine), EventIntake(engine))
