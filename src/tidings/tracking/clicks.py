"""The click writer: short-link redirects hand their clicks to it and never wait for the store.

A thread of its own writes what has gathered every `click_flush_seconds` (0.1 s by default)
in one transaction, and everything still waiting when the server stops. What a crash of the
process can lose is therefore the clicks of the last flush interval; a click whose write
fails (the store busy or away) stays in memory and is tried again at the next flush.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tidings.db import utc_text

log = logging.getLogger(__name__)
MAX_WAITING = 200_000  # clicks kept while the store cannot take them; older ones are dropped
STOP_GRACE = 10.0  # seconds the last flush may take when the server stops
# A click on a link that was removed meanwhile (its campaign planned again) is dropped here
# rather than failing its whole batch on the foreign key.
INSERT_CLICK = (
    "INSERT INTO clicks (link_id, clicked_at, user_agent, is_robot, robot_reason)"
    " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM short_links WHERE id = ?)"
)


@dataclass(frozen=True)
class ClickRecord:
    """One request for a short link, as the redirect saw it."""

    link_id: int
    clicked_at: datetime
    user_agent: str | None
    robot_reason: str | None


class ClickWriter:
    """Gathers clicks in memory and writes them in small batches on a background thread."""

    def __init__(self, engine: Engine, *, flush_seconds: float) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self._waiting: list[ClickRecord] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, click: ClickRecord) -> None:
        """Keeps a click for the next flush (starts the writer thread on the first one)."""
        with self._lock:
            self._waiting.append(click)
            if len(self._waiting) > MAX_WAITING:
                dropped = len(self._waiting) - MAX_WAITING
                del self._waiting[:dropped]
                log.error("the store has taken no clicks for a while: %d dropped", dropped)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="tidings-clicks", daemon=True
                )
                self._thread.start()

    def waiting(self) -> int:
        """How many clicks are not written yet."""
        with self._lock:
            return len(self._waiting)

    def flush(self) -> int:
        """Writes every waiting click in one transaction; returns how many went in."""
        with self._flushing:
            with self._lock:
                batch, self._waiting = self._waiting, []
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception:
                log.exception("%d clicks could not be written; trying again", len(batch))
                with self._lock:
                    self._waiting[:0] = batch
                return 0
            return len(batch)

    def _write(self, batch: list[ClickRecord]) -> None:
        """One transaction, one executemany with the driver's own markers; the times go in
        as each store keeps them (UTC text on SQLite)."""
        sqlite = self.engine.dialect.name == "sqlite"
        sql = INSERT_CLICK if sqlite else INSERT_CLICK.replace("?", "%s")
        rows = [
            (
                click.link_id,
                utc_text(click.clicked_at) if sqlite else click.clicked_at,
                click.user_agent,
                click.robot_reason is not None,
                click.robot_reason,
                click.link_id,
            )
            for click in batch
        ]
        with self.engine.begin() as connection:
            connection.exec_driver_sql(sql, rows)

    def close(self) -> None:
        """Stops the thread and writes what is still waiting (on the server's shutdown)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(STOP_GRACE)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
