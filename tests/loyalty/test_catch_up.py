"""Orders an import left without points are credited later (`tidings points accrue`, the
worker's housekeeping), once each; two batches crediting the same orders at the same moment
on PostgreSQL credit them once and neither fails."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker
from tidings.loyalty import service

from .test_points import NOW, _import, _ledger_sums, _points


@pytest.fixture(autouse=True)
def tier_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_POINTS_PER_YUAN", "default=1;gold=2")
    get_settings.cache_clear()


def _lose_points_of(engine: Engine, order_refs: tuple[str, ...]) -> None:
    """As if the import had stopped before these orders' points were written."""
    with engine.begin() as connection:
        for ref in order_refs:
            order = connection.execute(
                text("SELECT id, member_id FROM orders WHERE external_id = :ref"), {"ref": ref}
            ).one()
            earned = connection.scalar(
                text("SELECT points FROM points_lots WHERE order_id = :id"), {"id": order.id}
            )
            connection.execute(
                text("DELETE FROM points_lots WHERE order_id = :id"), {"id": order.id}
            )
            connection.execute(
                text("UPDATE members SET points = points - :p WHERE id = :m"),
                {"p": earned, "m": order.member_id},
            )


def _accrual_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(text("SELECT COUNT(*) FROM points_lots WHERE kind = 'accrual'"))
        )


def test_points_accrue_credits_what_an_interrupted_import_left(
    cli: Any, engine: Engine, tmp_path: Path
) -> None:
    _import(cli, tmp_path)  # M1 130 (SO1 120, SO3 10), M2 176 (SO2)
    _lose_points_of(engine, ("SO2", "SO3"))
    assert _points(engine) == {"M1": 120, "M2": 0}
    # SO3 was placed on 5 March: from the 6th on there is nothing to credit.
    late = cli("points", "accrue", "--since", "2026-03-06", "--json")
    assert late.exit_code == 0, late.output
    assert json.loads(late.output) == {"orders": 0, "points": 0}
    result = cli("points", "accrue", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"orders": 2, "points": 186}
    assert _points(engine) == {"M1": 130, "M2": 176} == _ledger_sums(engine)
    again = cli("points", "accrue")
    assert again.exit_code == 0 and "credited 0 points to 0 orders" in again.output
    assert _accrual_count(engine) == 3


def test_points_accrue_refuses_a_date_it_cannot_read(cli: Any, engine: Engine) -> None:
    result = cli("points", "accrue", "--since", "5 March")
    assert result.exit_code != 0
    assert "--since" in result.output


def test_the_worker_credits_orders_left_without_points(
    cli: Any, engine: Engine, tmp_path: Path
) -> None:
    _import(cli, tmp_path)
    _lose_points_of(engine, ("SO1",))
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    asyncio.run(Worker(engine, settings=settings).run(once=True))
    assert _points(engine) == {"M1": 130, "M2": 176} == _ledger_sums(engine)


@pytest.mark.parametrize(
    "engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_batches_crediting_the_same_orders_at_once_credit_them_once(
    cli: Any, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import(cli, tmp_path)
    _lose_points_of(engine, ("SO1", "SO2", "SO3"))
    with engine.connect() as connection:
        second = int(connection.scalar(text("SELECT id FROM orders WHERE external_id = 'SO2'")))
    # Both batches read the orders still without points before either writes any.
    both_read = threading.Barrier(2, timeout=30)
    stage = service._stage_ids

    def stage_after_both_read(store: Any, table: str, frame: Any) -> None:
        if table == "loyalty_members" and not getattr(local, "waited", False):
            local.waited = True
            both_read.wait()
        stage(store, table, frame)

    local = threading.local()
    monkeypatch.setattr(service, "_stage_ids", stage_after_both_read)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def credit(first_order_id: int) -> None:
        try:
            with session_scope(engine) as session:
                results.append(
                    service.accrue_orders(
                        db_session=session, now=NOW, first_order_id=first_order_id
                    )
                )
        except BaseException as error:  # the test reports it below
            errors.append(error)

    threads = [threading.Thread(target=credit, args=(start,)) for start in (0, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r["orders"] for r in results) == 3
    assert sum(r["points"] for r in results) == 306
    assert _points(engine) == {"M1": 130, "M2": 176} == _ledger_sums(engine)
    assert _accrual_count(engine) == 3
