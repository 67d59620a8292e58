"""Importing order lines and products: cents, local times, order grouping, idempotence."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select, text

from tidings.config import get_settings
from tidings.db import session_scope
from tidings.imports import indexes
from tidings.members.models import Member
from tidings.orders import importer
from tidings.orders.importer import import_orders
from tidings.orders.models import Order, OrderItem, Product

ORDERS = (
    "订单号,下单时间,会员编号,手机号,门店编码,商品编码,品类,数量,实付金额,折扣\n"
    "SO1,2024-05-01 10:00:00,M1,,S01,P1,,1,299.00,否\n"  # line 2
    "SO1,2024-05-01 10:00:00,M1,,S01,P2,,3,0.10,1.50\n"  # line 3: second line of SO1
    "\n"
    'SO2,2024-05-02T09:30:00+00:00,,"+86 139-0013-9000",朝阳店,P2,,1,"1,005.5",\n'  # line 5
    "SO3,2024-05-02 11:00,M404,,,P2,,1,5.50,\n"  # line 6: unknown member
    "SO4,2024-13-02 11:00,M1,,,P2,,1,5.5.0,\n"  # line 7: bad time and amount
    "SO1,2024-05-03 11:00,M1,,,P2,,1,5.50,\n"  # line 8: SO1 but another time
    "SO5,2024-05-04 12:00,M1,,S99,P2,,1,5.50,\n"  # line 9: unknown store
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def catalogue(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stores = write(tmp_path, "stores.csv", "code,name,city\nS01,朝阳店,北京\n")
    products = write(
        tmp_path,
        "products.csv",
        "sku,name,category,pack_size_days,price\nP1,奶粉,母婴,30,299\nP2,苹果,水果,,5.5\n",
    )
    members = write(tmp_path, "members.csv", "member_code,phone\nM1,13800138000\nM2,13900139000\n")
    for kind, path in (("stores", stores), ("products", products), ("members", members)):
        assert cli("import", kind, str(path)).exit_code == 0


@pytest.fixture(params=["every-member-read-once", "each-batch-looked-up"])
def member_lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines find their members among every member's keys read once (a large import), or
    through the code and phone indexes batch by batch (a few lines beside many members)."""
    share = 10**9 if request.param == "every-member-read-once" else 0
    monkeypatch.setattr(importer, "LINES_PER_MEMBER_READ", share)


def rejects_of(path: str) -> dict[int, str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return {int(row["line"]): row["reason"] for row in csv.DictReader(handle)}


def test_order_lines_become_orders_with_exact_cents(
    cli, engine: Engine, catalogue, tmp_path: Path, member_lookup
) -> None:
    result = cli("import", "orders", str(write(tmp_path, "orders.csv", ORDERS)), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["rows"] == 7 and counts["inserted"] == 3 and counts["rejected"] == 4
    with session_scope(engine) as db_session:
        orders = {o.external_id: o for o in db_session.scalars(select(Order))}
        assert set(orders) == {"SO1", "SO2"}
        assert orders["SO1"].amount_cents == 29910 and orders["SO1"].discount_cents == 150
        assert orders["SO1"].ordered_at == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
        assert orders["SO2"].amount_cents == 100550
        assert orders["SO2"].ordered_at == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
        items = db_session.scalars(
            select(OrderItem)
            .where(OrderItem.order_id == orders["SO1"].id)
            .order_by(OrderItem.line_no)
        ).all()
        assert [(i.line_no, i.sku, i.category, i.quantity, i.discounted) for i in items] == [
            (1, "P1", "母婴", 1, False),
            (2, "P2", "水果", 3, True),
        ]
    rejects = rejects_of(counts["rejects_file"])
    assert "member 'M404' is not known" in rejects[6]
    assert "ordered_at '2024-13-02 11:00' is not a date and time" in rejects[7]
    assert "amount '5.5.0' is not an amount in yuan" in rejects[7]
    assert rejects[8].startswith("order 'SO1' has another member or time")
    assert rejects[9] == "store 'S99' is not known; import stores first"


def test_reimporting_orders_inserts_and_changes_nothing(
    cli, engine: Engine, catalogue, tmp_path: Path, member_lookup
) -> None:
    path = write(tmp_path, "orders.csv", ORDERS)
    cli("import", "orders", str(path))
    with session_scope(engine) as db_session:
        before = [
            (o.external_id, o.amount_cents)
            for o in db_session.scalars(select(Order).order_by(Order.id))
        ]
    counts = json.loads(cli("import", "orders", str(path), "--json").output)
    assert (counts["inserted"], counts["updated"]) == (0, 0)
    with session_scope(engine) as db_session:
        after = [
            (o.external_id, o.amount_cents)
            for o in db_session.scalars(select(Order).order_by(Order.id))
        ]
        assert db_session.scalar(select(func.count()).select_from(OrderItem)) == 3
    assert after == before


def test_create_members_makes_the_unknown_ones(
    cli, engine: Engine, catalogue, tmp_path: Path, member_lookup
) -> None:
    path = write(tmp_path, "orders.csv", ORDERS)
    counts = json.loads(cli("import", "orders", str(path), "--create-members", "--json").output)
    assert counts["inserted"] == 4
    with session_scope(engine) as db_session:
        created = db_session.scalars(select(Member).where(Member.code == "M404")).one()
        assert created.phone is None and created.phone_status.value == "missing"


def test_lines_of_one_order_split_across_batches_stay_one_order(
    engine: Engine, catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "2")
    get_settings.cache_clear()
    lines = "".join(f"SO{n // 3},2024-05-01 10:00,M1,,,P2,,1,1.{n:02d},\n" for n in range(9))
    scattered = "SO0,2024-05-01 10:00,M1,,,P1,,1,2.00,\n"  # one more line of SO0, far away
    path = write(tmp_path, "orders.csv", ORDERS.splitlines()[0] + "\n" + lines + scattered)
    result = import_orders(engine=engine, path=path)
    get_settings.cache_clear()
    assert result.inserted == 10 and result.rejected == 0
    with session_scope(engine) as db_session:
        orders = {o.external_id: o for o in db_session.scalars(select(Order))}
        assert {name: o.amount_cents for name, o in orders.items()} == {
            "SO0": 100 + 101 + 102 + 200, "SO1": 103 + 104 + 105, "SO2": 106 + 107 + 108,
        }  # fmt: skip
        numbers = db_session.scalars(
            select(OrderItem.line_no)
            .where(OrderItem.order_id == orders["SO0"].id)
            .order_by(OrderItem.line_no)
        ).all()
        assert numbers == [1, 2, 3, 4]


def test_a_held_back_line_at_odds_with_its_order_is_rejected_with_its_own_line(
    engine: Engine, catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "2")
    get_settings.cache_clear()
    lines = (
        "SO1,2024-05-01 10:00,M1,,,P2,,1,1.00,\n"  # line 2
        "SO2,2024-05-01 11:00,M1,,,P2,,1,2.00,\n"  # line 3: held back past the first batch
        "SO2,2024-05-01 12:00,M1,,,P2,,1,3.00,\n"  # line 4: SO2 at another time
        "SO2,2024-05-01 11:00,M1,,,P1,,1,4.00,\n"  # line 5
    )
    path = write(tmp_path, "orders.csv", ORDERS.splitlines()[0] + "\n" + lines)
    result = import_orders(engine=engine, path=path)
    get_settings.cache_clear()
    assert (result.inserted, result.rejected) == (3, 1)
    assert result.rejects_file is not None
    assert list(rejects_of(str(result.rejects_file))) == [4]
    with session_scope(engine) as db_session:
        amounts = {o.external_id: o.amount_cents for o in db_session.scalars(select(Order))}
    assert amounts == {"SO1": 100, "SO2": 600}


def test_members_looked_up_batch_by_batch_are_looked_up_by_the_writer(
    engine: Engine, catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few lines beside many members: each batch looks its members up in the store, on the
    store's connection, which the batch before it is writing through meanwhile."""
    monkeypatch.setattr(importer, "LINES_PER_MEMBER_READ", 0)
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "50")
    get_settings.cache_clear()
    lines = "".join(f"SO{n},2024-05-01 10:00,M{1 + n % 2},,,P2,,1,1.00,\n" for n in range(4_000))
    path = write(tmp_path, "orders.csv", ORDERS.splitlines()[0] + "\n" + lines)
    result = import_orders(engine=engine, path=path)
    get_settings.cache_clear()
    assert (result.inserted, result.rejected) == (4_000, 0)
    with session_scope(engine) as db_session:
        assert db_session.scalar(select(func.count()).select_from(Order)) == 4_000


def test_orders_file_without_amount_stops(cli, tmp_path: Path) -> None:
    result = cli(
        "import",
        "orders",
        str(write(tmp_path, "o.csv", "order_id,ordered_at,phone\n1,2024-01-01,13800138000\n")),
    )
    assert result.exit_code == 2
    assert "no amount column" in result.output


def test_products_upsert_by_sku(cli, engine: Engine, tmp_path: Path) -> None:
    header = "sku,name,category,pack_size_days,price\n"
    cli(
        "import",
        "products",
        str(write(tmp_path, "p.csv", header + "P1,奶粉,母婴,30,299\nP2,苹果,水果,,x\n")),
    )
    counts = json.loads(
        cli(
            "import",
            "products",
            str(write(tmp_path, "p.csv", header + "P1,奶粉,母婴,28,289.5\n")),
            "--json",
        ).output
    )
    assert (counts["inserted"], counts["updated"], counts["rejected"]) == (0, 1, 0)
    with session_scope(engine) as db_session:
        product = db_session.scalars(select(Product)).one()
        assert (product.pack_size_days, product.price_cents) == (28, 28950)


def _index_names(engine: Engine, table: str) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes(table)}


def test_a_large_import_builds_its_indexes_after_and_keeps_every_row_and_point(
    engine: Engine, catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexes, "DEFER_MIN_ROWS", 0)  # this small file counts as large
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "3")
    get_settings.cache_clear()
    before = {table: _index_names(engine, table) for table in ("orders", "points_lots")}
    lines = "".join(
        f"SO{n // 2},2024-05-01 10:00,M{n // 2 % 2 + 1},,,P1,,1,10.00,\n" for n in range(8)
    )
    path = write(tmp_path, "orders.csv", ORDERS.splitlines()[0] + "\n" + lines)
    result = import_orders(engine=engine, path=path)
    get_settings.cache_clear()
    assert (result.inserted, result.rejected) == (8, 0)
    assert {table: _index_names(engine, table) for table in before} == before
    with session_scope(engine) as db_session:
        by_member = select(Order.member_id, func.count()).group_by(Order.member_id)
        assert sorted(n for _member, n in db_session.execute(by_member)) == [2, 2]
        earned = select(Member.code, Member.points).order_by(Member.code)
        assert db_session.execute(earned).all() == [("M1", 40), ("M2", 40)]


def test_an_import_restores_indexes_that_a_crashed_one_left_unbuilt(
    cli, engine: Engine, catalogue, tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite imports build their indexes after the load")
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_orders_member_id_ordered_at"))
    assert cli("import", "orders", str(write(tmp_path, "orders.csv", ORDERS))).exit_code == 0
    assert "ix_orders_member_id_ordered_at" in _index_names(engine, "orders")


def test_db_upgrade_restores_indexes_that_a_crashed_import_left_unbuilt(
    cli, engine: Engine
) -> None:
    """A store left without an import's indexes gets them back as `tidings db upgrade` (and
    so `tidings serve`) starts, not only with the next import."""
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite imports build their indexes after the load")
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_orders_member_id_ordered_at"))
    assert "ix_orders_member_id_ordered_at" not in _index_names(engine, "orders")
    assert cli("db", "upgrade").exit_code == 0
    assert "ix_orders_member_id_ordered_at" in _index_names(engine, "orders")
