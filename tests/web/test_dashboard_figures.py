"""The dashboard's figures are kept for a while and then recomputed in the background, so a
view never waits for the sums once the first one is made."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.db import bulk_insert, session_scope
from tidings.web.dashboard.figures import FiguresCache

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
UTC_TIME = pl.Datetime("us", "UTC")


def _sent(engine: Engine, count: int) -> None:
    stamp = pl.lit(NOW, dtype=UTC_TIME)
    messages = pl.DataFrame({"id": range(1, count + 1)}).with_columns(
        dedupe_key=pl.format("m:{}", "id"),
        phone=pl.lit("+8613900000001"),
        text=pl.lit("hi"),
        kind=pl.lit("marketing"),
        priority=pl.lit(9),
        parts=pl.lit(1),
        cost_cents=pl.lit(5),
        state=pl.lit("delivered"),
        rollout_stage=pl.lit(0),
        provider=pl.lit("simulator"),
        attempts=pl.lit(1),
        send_at=stamp,
        created_at=stamp,
        updated_at=stamp,
    )
    with session_scope(engine) as db_session:
        bulk_insert(db_session, "messages", messages)


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
