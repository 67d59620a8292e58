"""Snapshots of the audience and of the order lines, kept in memory per store.

A count on every keystroke only filters columns already in memory; a snapshot is read again
when members, profiles, consent, points or orders changed (a cheap fingerprint query tells), and is
trusted without asking for `RECHECK_INTERVAL` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import Engine, text

from tidings.scans import start_kept_children
from tidings.segments.audience import field_order, load_audience, load_order_lines, local_today

RECHECK_INTERVAL = 1.0  # seconds a snapshot is trusted before the store is asked again


@dataclass
class _Snapshot:
    """A frame read from one store, with what the store looked like when it was read."""

    fingerprint: tuple[Any, ...]
    day: date | None
    frame: pl.DataFrame
    checked_at: float  # time.monotonic() of the last check against the store
    fields: frozenset[str] | None = None  # the fields it holds; None: every field

    def holds(self, day: date | None, fields: Collection[str] | None) -> bool:
        """Whether it is of `day` and holds `fields` (None: every field)."""
        if self.day != day:
            return False
        return self.fields is None or (fields is not None and self.fields.issuperset(fields))


# Members' and profiles' counts come from the same read as their latest time: PostgreSQL
# scanned a million members twice for the two (the fingerprint took 0.48 s, now 0.28 s).
_AUDIENCE_FINGERPRINT = text(
    "SELECT m.n, m.latest, p.n, p.latest,"
    " (SELECT count(*) FROM consent_events), (SELECT max(id) FROM consent_events),"
    " (SELECT count(*) FROM stores), (SELECT max(id) FROM stores),"
    " (SELECT max(id) FROM points_lots)"  # every change of the points ledger adds an entry
    " FROM (SELECT count(*) AS n, max(updated_at) AS latest FROM members) AS m,"
    " (SELECT count(*) AS n, max(computed_at) AS latest FROM profiles) AS p"
)
_ORDER_LINES_FINGERPRINT = text(
    "SELECT (SELECT count(*) FROM order_items), (SELECT max(id) FROM order_items),"
    " (SELECT count(*) FROM orders), (SELECT max(id) FROM orders),"
    # Rows changed in place, counted by a SQLite store's triggers (migration 0022).
    " (SELECT sum(changes) FROM changed_rows)"
)
_audiences: dict[str, _Snapshot] = {}
_order_lines: dict[str, _Snapshot] = {}
_lock = threading.Lock()


def snapshot(
    engine: Engine, *, today: date | None = None, fields: Collection[str] | None = None
) -> pl.DataFrame:
    """Returns the store's audience frame from memory, reading it again if the store changed.

    With `fields`, a snapshot holding those fields serves; otherwise only they are read (and
    kept, until a caller asks for more). The frame may hold more fields than asked for.
    """
    day = today or local_today()
    wanted = None if fields is None else frozenset(field_order(fields))
    return _cached(
        _audiences,
        engine,
        day,
        _AUDIENCE_FINGERPRINT,
        lambda: load_audience(engine, today=day, fields=wanted),
        big_table="members",
        fields=wanted,
    )


def order_lines_snapshot(engine: Engine) -> pl.DataFrame:
    """Returns the store's order lines from memory, reading them again if orders changed."""
    return _cached(
        _order_lines,
        engine,
        None,
        _ORDER_LINES_FINGERPRINT,
        lambda: load_order_lines(engine),
        big_table="order_items",
    )


def invalidate(engine: Engine | None = None) -> None:
    """Forgets the snapshots of one store (or of every store), so the next count reads afresh."""
    with _lock:
        for cache in (_audiences, _order_lines):
            if engine is None:
                cache.clear()
            else:
                cache.pop(_key(engine), None)


def _key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _cached(
    cache: dict[str, _Snapshot],
    engine: Engine,
    day: date | None,
    fingerprint_sql: Any,
    load: Any,
    *,
    big_table: str,
    fields: frozenset[str] | None = None,
) -> pl.DataFrame:
    """The cached frame of the store, loaded again when its fingerprint changed; `big_table`
    is the table whose size tells whether children will read it."""
    key = _key(engine)
    with _lock:
        current = cache.get(key)
    now = time.monotonic()
    usable = current is not None and current.holds(day, fields)
    if usable and current is not None and now - current.checked_at < RECHECK_INTERVAL:
        return current.frame
    if not usable:
        # A big SQLite file's reading children (half a second to start) start meanwhile.
        start_kept_children(engine, big_table)
    # Read the fingerprint before the data: a change made while loading shows next time.
    with engine.connect() as connection:
        fingerprint = tuple(connection.execute(fingerprint_sql).one())
    if usable and current is not None and current.fingerprint == fingerprint:
        current.checked_at = now
        return current.frame
    frame: pl.DataFrame = load()
    with _lock:
        cache[key] = _Snapshot(fingerprint, day, frame, now, fields)
    return frame
