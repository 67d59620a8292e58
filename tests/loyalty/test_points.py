"""The points ledger: orders earn lots at their tier's rate, once; redemptions spend the lots
that expire first; expiry writes off what is left; an imported balance becomes one lot."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tidings import clock
from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker
from tidings.loyalty import service
from tidings.loyalty.models import Coupon, LotKind, PointsLot
from tidings.loyalty.points import PointsSettingError, parse_rates
from tidings.members.models import Member

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
MEMBERS = "member_code,phone,tier\nM1,13800138001,\nM2,13800138002,gold\n"
ORDERS = (
    "order_id,ordered_at,member_code,amount,sku\n"
    "SO1,2026-01-10 10:00,M1,120.50,P1\n"  # 120 points at 1 per yuan
    "SO2,2026-03-05 10:00,M2,88.00,P1\n"  # gold: 176 points at 2 per yuan
    "SO3,2026-03-05 11:00,M1,10.99,P1\n"  # 10 points: floors, never rounds up
)


@pytest.fixture(autouse=True)
def tier_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_POINTS_PER_YUAN", "default=1;gold=2")
    get_settings.cache_clear()


def _write(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def _import(cli: Any, tmp_path: Path, members: str = MEMBERS, orders: str = ORDERS) -> None:
    with clock.frozen(NOW):
        assert cli("import", "members", _write(tmp_path, "members.csv", members)).exit_code == 0
        result = cli("import", "orders", _write(tmp_path, "orders.csv", orders))
    assert result.exit_code == 0, result.output


def _points(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT code, points FROM members ORDER BY code"))
        return {code: points for code, points in rows}


def _ledger_sums(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT m.code, COALESCE(SUM(l.remaining), 0) FROM members m"
                " LEFT JOIN points_lots l ON l.member_id = m.id GROUP BY m.code ORDER BY m.code"
            )
        )
        return {code: int(total) for code, total in rows}


def _member_id(engine: Engine, code: str) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT id FROM members WHERE code = :c"), {"c": code}))


def test_orders_earn_points_at_their_tier_rate_once(cli: Any, engine: Engine, tmp_path: Path):
    _import(cli, tmp_path)
    assert _points(engine) == {"M1": 130, "M2": 176}
    assert _ledger_sums(engine) == _points(engine)
    with engine.connect() as connection:
        expires = connection.scalar(select(PointsLot.expires_at).where(PointsLot.points == 176))
    assert expires == datetime(2027, 3, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 12 months on
    # The same file again, and an API batch holding an order already imported: nothing more.
    _import(cli, tmp_path)
    assert _points(engine) == {"M1": 130, "M2": 176}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT COUNT(*) FROM points_lots")) == 3


def test_an_order_whose_lines_come_in_different_batches_earns_on_its_whole_amount(
    cli: Any, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "2")
    get_settings.cache_clear()
    orders = (
        "order_id,ordered_at,member_code,amount,sku\n"
        "SO1,2026-01-10 10:00,M2,60.00,P1\n"
        "SO2,2026-01-11 10:00,M1,5.00,P1\n"
        "SO3,2026-01-12 10:00,M1,7.00,P1\n"
        "SO4,2026-01-13 10:00,M1,9.00,P1\n"
        "SO1,2026-01-10 10:00,M2,60.75,P1\n"  # SO1 is 120.75 yuan: 241 points for gold
    )
    _import(cli, tmp_path, orders=orders)
    assert _points(engine) == {"M1": 5 + 7 + 9, "M2": 241}
    assert _ledger_sums(engine) == _points(engine)
    with engine.connect() as connection:
        lots = connection.scalar(text("SELECT COUNT(*) FROM points_lots WHERE kind = 'accrual'"))
    assert lots == 4


def test_an_imported_balance_becomes_one_opening_lot(cli: Any, engine: Engine, tmp_path: Path):
    members = "member_code,phone,points\nM1,13800138001,500\nM2,13800138002,0\n"
    _import(cli, tmp_path, members=members, orders=ORDERS.replace(",M2,", ",M1,"))
    assert _points(engine) == {"M1": 500 + 120 + 88 + 10, "M2": 0}
    assert _ledger_sums(engine) == _points(engine)
    with engine.connect() as connection:
        kinds = connection.execute(text("SELECT kind, points FROM points_lots ORDER BY id")).all()
    assert tuple(kinds[0]) == ("opening", 500)


def test_a_member_file_that_changes_a_balance_is_an_adjustment(
    cli: Any, engine: Engine, tmp_path: Path
) -> None:
    _import(cli, tmp_path)  # M1 130 (120 in January, 10 in March), M2 176
    members = "member_code,phone,points\nM1,13800138001,100\nM2,13800138002,200\n"
    with clock.frozen(NOW):
        assert cli("import", "members", _write(tmp_path, "again.csv", members)).exit_code == 0
    assert _points(engine) == {"M1": 100, "M2": 200}
    assert _ledger_sums(engine) == _points(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT m.code, l.kind, l.points, l.remaining FROM points_lots l"
                " JOIN members m ON m.id = l.member_id ORDER BY m.code, l.id"
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("M1", "accrual", 120, 90),  # the 30 taken come from the lot expiring first
        ("M1", "accrual", 10, 10),
        ("M1", "adjustment", -30, 0),
        ("M2", "accrual", 176, 176),
        ("M2", "adjustment", 24, 24),
    ]


def _lots(engine: Engine, member_id: int, *entries: tuple[int, datetime]) -> None:
    with session_scope(engine) as session:
        for points, expires in entries:
            session.add(
                PointsLot(
                    member_id=member_id,
                    kind=LotKind.ACCRUAL,
                    points=points,
                    remaining=points,
                    occurred_at=expires - timedelta(days=365),
                    expires_at=expires,
                )
            )
        member = session.get(Member, member_id)
        assert member is not None
        member.points = sum(points for points, _ in entries)


def _member(engine: Engine, code: str = "M1", phone: str = "+8613800138001") -> int:
    with session_scope(engine) as session:
        member = Member(code=code, phone=phone, points=0)
        session.add(member)
        session.flush()
        return member.id


def test_redemption_spends_the_lots_that_expire_first(engine: Engine) -> None:
    member_id = _member(engine)
    late, early, middle = NOW + timedelta(days=300), NOW + timedelta(days=10), NOW + timedelta(60)
    _lots(engine, member_id, (80, late), (70, early), (90, middle))
    with session_scope(engine) as session:
        done = service.redeem(db_session=session, member_id=member_id, now=NOW, wanted=100)
    assert (done.points, done.value_cents, done.balance) == (100, 100, 140)
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT points, remaining FROM points_lots WHERE kind = 'accrual' ORDER BY id")
        ).all()
        coupon = connection.execute(select(Coupon.source, Coupon.value_cents)).one()
        entry = connection.execute(
            text("SELECT points, coupon_id IS NOT NULL FROM points_lots WHERE kind = 'redemption'")
        ).one()
    assert [tuple(row) for row in left] == [(80, 80), (70, 0), (90, 60)]
    assert tuple(coupon) == ("points", 100)
    assert tuple(entry) == (-100, True)


def test_a_short_balance_is_refused_and_changes_nothing(engine: Engine) -> None:
    member_id = _member(engine)
    # 150 points, but 100 of them expired yesterday (the expiry run has not been yet).
    _lots(engine, member_id, (100, NOW - timedelta(days=1)), (50, NOW + timedelta(days=5)))
    with session_scope(engine) as session, pytest.raises(service.RedemptionRefused) as refused:
        service.redeem(db_session=session, member_id=member_id, now=NOW, wanted=100)
    assert refused.value.reason == "balance_short"
    assert "has 50 points that have not expired" in str(refused.value)
    with session_scope(engine) as session, pytest.raises(service.RedemptionRefused) as odd:
        service.redeem(db_session=session, member_id=member_id, now=NOW, wanted=30)
    assert odd.value.reason == "not_whole_units" and "multiple of 100" in str(odd.value)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT COUNT(*) FROM coupons")) == 0
        assert connection.scalar(text("SELECT SUM(remaining) FROM points_lots")) == 150


def test_expiry_writes_off_what_is_left_once_per_member(engine: Engine, cli: Any) -> None:
    first, second = _member(engine, "M1"), _member(engine, "M2", "+8613800138002")
    _lots(engine, first, (100, NOW - timedelta(days=2)), (40, NOW - timedelta(hours=1)))
    _lots(engine, second, (70, NOW + timedelta(days=3)))
    with session_scope(engine) as session:
        service.redeem(db_session=session, member_id=first, now=NOW - timedelta(days=3))
    with clock.frozen(NOW):
        ran = json.loads(cli("points", "expire", "--json").output)
        again = json.loads(cli("points", "expire", "--json").output)
    assert ran == {"members": 1, "lots": 1, "points": 40}
    assert again == {"members": 0, "lots": 0, "points": 0}
    assert _points(engine) == {"M1": 0, "M2": 70}
    assert _ledger_sums(engine) == _points(engine)
    with engine.connect() as connection:
        entries = connection.execute(
            text("SELECT member_id, points FROM points_lots WHERE kind = 'expiry'")
        ).all()
    assert [tuple(row) for row in entries] == [(first, -40)]


def test_points_show_and_redeem_from_the_cli(engine: Engine, cli: Any) -> None:
    member_id = _member(engine)
    _lots(engine, member_id, (150, NOW + timedelta(days=20)), (300, NOW + timedelta(days=200)))
    with clock.frozen(NOW):
        shown = json.loads(cli("points", "show", "M1", "--json").output)
        redeemed = cli("points", "redeem", "+86 138 0013 8001", "--points", "200", "--json")
        short = cli("points", "redeem", "M1", "--points", "500")
    assert (shown["balance"], shown["expiring"], shown["expiry_date"]) == (450, 150, "2026-06-21")
    result = json.loads(redeemed.output)
    assert (result["points"], result["value_cents"], result["balance"]) == (200, 200, 250)
    assert short.exit_code == 1 and "this redemption takes 500" in short.output
    assert cli("points", "show", "M404").exit_code == 1


def test_rates_are_read_with_a_clear_error() -> None:
    assert parse_rates("gold=2; silver=1.5") == {"gold": 2.0, "silver": 1.5, "default": 1.0}
    with pytest.raises(PointsSettingError, match="'gold' is not tier=rate"):
        parse_rates("default=1;gold")


def test_the_worker_writes_off_expired_points_on_its_first_round(engine: Engine) -> None:
    member_id = _member(engine)
    _lots(engine, member_id, (60, datetime.now(UTC) - timedelta(days=1)))
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    asyncio.run(Worker(engine, settings=settings).run(once=True))
    with engine.connect() as connection:
        entry = connection.execute(
            text("SELECT points FROM points_lots WHERE kind = 'expiry'")
        ).scalar_one()
        balance = connection.scalar(text("SELECT points FROM members"))
    assert (entry, balance) == (-60, 0)


def test_a_gift_takes_its_points_and_gives_a_voucher(
    engine: Engine, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_POINTS_GIFTS", '{"tote-bag": 300}')
    member_id = _member(engine)
    _lots(engine, member_id, (250, NOW + timedelta(days=20)), (100, NOW + timedelta(days=200)))
    with clock.frozen(NOW):
        done = json.loads(cli("points", "redeem", "M1", "--gift", "tote-bag", "--json").output)
        unknown = cli("points", "redeem", "M1", "--gift", "kettle")
        voucher = json.loads(cli("coupon", "show", done["coupon_code"], "--json").output)
    assert (done["points"], done["balance"], done["gift"]) == (300, 50, "tote-bag")
    assert (voucher["gift"], voucher["source"], voucher["value_cents"]) == ("tote-bag", "points", 0)
    assert unknown.exit_code == 1 and "no gift 'kettle'; the gifts are: tote-bag" in unknown.output
