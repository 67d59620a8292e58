"""The dashboard's figures are kept for a while and then recomputed in the background, so a
view never waits for the sums once the first one is made."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from dispatch.conftest import add_messages  # type: ignore[import-not-found]
from tidings import clock
from tidings.web.dashboard.figures import FiguresCache

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def _sent(engine: Engine, count: int) -> None:
    add_messages(engine, count, campaign_id=None, state="delivered", send_at=NOW)


def _settle_refreshes() -> None:
    for thread in threading.enumerate():
        if thread.name == "dashboard-figures":
            thread.join(timeout=30)


def test_old_figures_are_shown_once_more_while_new_ones_are_summed(engine: Engine) -> None:
    cache = FiguresCache(engine, max_age_seconds=60)
    with clock.frozen(NOW):
        assert cache.get(None).totals["sent"] == 0
    _sent(engine, 3)
    with clock.frozen(NOW + timedelta(seconds=30)):
        assert cache.get(None).totals["sent"] == 0  # still fresh: kept as they were
    with clock.frozen(NOW + timedelta(seconds=90)):
        assert cache.get(None).totals["sent"] == 0  # old: shown once more, summed again
        _settle_refreshes()
        figures = cache.get(None)
    assert (figures.totals["sent"], figures.totals["cost_cents"]) == (3, 15)
    assert figures.computed_at == NOW + timedelta(seconds=90)
