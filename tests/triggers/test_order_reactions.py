"""An order import reacts to its new orders after storing them; one stopped in between
leaves nothing behind: the worker sends the receipts it owed, once, and no others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tidings import clock
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.orders import reactions
from tidings.orders.importer import OrderBatches, import_orders
from tidings.orders.models import Order

from .conftest import add_member, add_order, add_store, at, local, trigger_messages

HEADER = "order_id,ordered_at,member_code,store_code,amount\n"
ORDERED = local(2026, 6, 10, 10)
LATER = local(2026, 6, 10, 10, 5)  # the worker's turn, past the grace of owed reactions


def _pos_file(tmp_path: Path, amount: str) -> Path:
    """A POS export of one order of member 1, placed at `ORDERED`."""
    path = tmp_path / "pos.csv"
    path.write_text(f"{HEADER}SO-1,{ORDERED:%Y-%m-%d %H:%M},M1,SH01,{amount}\n", encoding="utf-8")
    return path


def _import_stopping_at(
    engine: Engine, path: Path, monkeypatch: pytest.MonkeyPatch, owner: object, name: str
) -> None:
    """Imports `path` at `ORDERED` with the process stopping where `owner.name` is called."""

    def stop(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    with at(ORDERED), monkeypatch.context() as patched:
        patched.setattr(owner, name, stop)
        with pytest.raises(KeyboardInterrupt):
            import_orders(engine=engine, path=path)


def _orders(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.execute(select(func.count()).select_from(Order)).scalar_one())


@pytest.fixture
def shop(engine: Engine) -> Engine:
    add_store(engine)
    for member_id in (1, 2):
        add_member(engine, member_id)
    return engine


@pytest.fixture
def interrupted(shop: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The shop after an import of one order of member 1 stopped as it began to react."""
    _import_stopping_at(
        shop, _pos_file(tmp_path, "88.50"), monkeypatch, reactions, "orders_arrived"
    )
    return shop


def test_the_worker_sends_the_receipts_an_interrupted_import_owed(
    interrupted: Engine, cli: Any
) -> None:
    assert _orders(interrupted) == 1
    assert trigger_messages(interrupted, "receipt").height == 0
    with at(LATER):
        assert cli("worker", "--once").exit_code == 0
        assert cli("worker", "--once").exit_code == 0  # nothing left to catch up on
    receipts = trigger_messages(interrupted, "receipt")
    assert receipts["member_id"].to_list() == [1]
    assert "消费88.50元" in receipts["text"][0]


def test_the_worker_leaves_alone_the_orders_of_an_import_still_storing(
    interrupted: Engine, cli: Any
) -> None:
    with at(ORDERED):
        add_order(interrupted, 2, ORDERED)  # stored by an import not done yet: no points so far
    with at(LATER):
        assert cli("worker", "--once").exit_code == 0
    assert trigger_messages(interrupted, "receipt")["member_id"].to_list() == [1]


def test_a_finished_import_leaves_the_worker_nothing_to_catch_up_on(
    shop: Engine, tmp_path: Path
) -> None:
    with at(ORDERED):
        import_orders(engine=shop, path=_pos_file(tmp_path, "10"))
    with at(LATER):
        assert reactions.catch_up(shop, get_settings(), clock.now()) == 0
    assert trigger_messages(shop, "receipt").height == 1


def test_orders_of_an_import_stopped_before_their_points_get_receipts_with_them(
    shop: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    _import_stopping_at(
        shop, _pos_file(tmp_path, "88.50"), monkeypatch, OrderBatches, "accrue_points"
    )
    assert _orders(shop) == 1
    with at(LATER):  # the worker's loyalty upkeep credits the order, and owes its reactions
        assert cli("worker", "--once").exit_code == 0
    assert trigger_messages(shop, "receipt").height == 0  # the import might still be reacting
    with at(LATER + timedelta(minutes=2)):
        assert cli("worker", "--once").exit_code == 0
    receipts = trigger_messages(shop, "receipt")
    assert receipts["member_id"].to_list() == [1]
    assert "本次获得88积分" in receipts["text"][0]
