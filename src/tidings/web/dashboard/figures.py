"""The dashboard's figures, kept per scope (everyone, or one store) for a short while.

Summing a fortnight of sends on a store of millions takes longer than a page should wait,
so a view older than the setting `console_dashboard_seconds` is answered at once from the
kept figures while one background thread recomputes them; only the very first view of a
scope after the process starts waits for the sums.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from tidings import clock
from tidings.db import session_scope
from tidings.reports import overview


@dataclass(frozen=True)
class Figures:
    """Everything the dashboard shows, as plain values, and when it was summed."""

    days: list[dict[str, Any]]
    totals: dict[str, int]
    breaches: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    tickets: dict[str, int]
    computed_at: datetime


def compute(engine: Engine, store_id: int | None) -> Figures:
    """Sums the dashboard's figures now (for one store, if given)."""
    now = clock.now()
    with session_scope(engine) as db_session:
        days = overview.daily(db_session=db_session, now=now, store_id=store_id)
        breaches = [
            {
                "scope": breach.scope,
                "scope_key": breach.scope_key,
                "day": breach.day,
                "metric": breach.metric,
                "value": breach.value,
                "threshold": breach.threshold,
            }
            for breach in overview.latest_breaches(db_session=db_session)
        ]
        campaigns = overview.running_campaigns(db_session=db_session)
        tickets = overview.ticket_counts(db_session=db_session, store_id=store_id)
    totals = {key: sum(day[key] for day in days) for key in days[0] if key != "day"}
    return Figures(days, totals, breaches, campaigns, tickets, now)


class FiguresCache:
    """Figures per scope, recomputed in the background once older than `max_age`."""

    def __init__(self, engine: Engine, *, max_age_seconds: float) -> None:
        self.engine = engine
        self.max_age = timedelta(seconds=max_age_seconds)
        self._kept: dict[int | None, Figures] = {}
        self._refreshing: set[int | None] = set()
        self._lock = threading.Lock()

    def get(self, store_id: int | None) -> Figures:
        """The scope's figures: kept ones (refreshed behind the scenes when old) or new ones."""
        kept = self._kept.get(store_id)
        if kept is None:
            figures = compute(self.engine, store_id)
            self._kept[store_id] = figures
            return figures
        if clock.now() - kept.computed_at > self.max_age:
            self._refresh_in_background(store_id)
        return kept

    def _refresh_in_background(self, store_id: int | None) -> None:
        with self._lock:
            if store_id in self._refreshing:
                return
            self._refreshing.add(store_id)

        def refresh() -> None:
            try:
                self._kept[store_id] = compute(self.engine, store_id)
            finally:
                with self._lock:
                    self._refreshing.discard(store_id)

        threading.Thread(target=refresh, name="dashboard-figures", daemon=True).start()
