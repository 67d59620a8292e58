"""The copies of the order tables kept beside a SQLite store, and what happens when the
store changes under them: profiles and segment counts always come out as from the store."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, text

from tidings import migrate, scancopies
from tidings.db import make_engine, read_frame, session_scope
from tidings.members.models import Member
from tidings.orders.frames import CATEGORICAL_ITEMS_SCAN
from tidings.orders.models import Order, OrderItem
from tidings.profiles.service import refresh
from tidings.scancopies import MANIFEST, open_copy
from tidings.segments import service as segments
from tidings.segments import snapshot

AS_OF = date(2025, 6, 30)
NOON = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite file of its own (the copies live beside it)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'tidings.db'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def copies_of(engine: Engine) -> Path:
    return Path(f"{engine.url.database}.copies")


def copy_of(engine: Engine, table: str) -> Path | None:
    """The manifest of the saved copy of `table`'s rows, if any."""
    found = sorted(copies_of(engine).glob(f"{table}-*/{MANIFEST}"))
    return found[0] if found else None


def add_orders(engine: Engine, code: str, *categories: str, days_ago: int = 1) -> None:
    """One order of the member `code` (made if new), a line per category."""
    with session_scope(engine) as db:
        member = db.query(Member).filter_by(code=code).one_or_none()
        if member is None:
            member = Member(code=code, phone=f"+86138{int(code[1:]):08d}")
            db.add(member)
            db.flush()
        order = Order(
            external_id=f"{code}-{days_ago}-{'-'.join(categories)}",
            member_id=member.id,
            ordered_at=NOON - timedelta(days=days_ago),
            amount_cents=10_000 * len(categories),
        )
        db.add(order)
        db.flush()
        for n, category in enumerate(categories, start=1):
            db.add(
                OrderItem(
                    order_id=order.id,
                    line_no=n,
                    sku=category,
                    category=category,
                    quantity=1,
                    amount_cents=10_000,
                    discounted=False,
                )
            )


def profiles(engine: Engine) -> pl.DataFrame:
    """Every profile as the store holds it, but for when it was computed."""
    frame = read_frame(engine, "SELECT * FROM profiles ORDER BY member_id")
    return frame.drop("computed_at")


def assert_as_from_the_store(engine: Engine) -> pl.DataFrame:
    """Refreshes, then checks the profiles equal those of a refresh without any copy."""
    refresh(engine=engine, as_of=AS_OF)
    kept = profiles(engine)
    shutil.rmtree(copies_of(engine), ignore_errors=True)
    refresh(engine=engine, as_of=AS_OF)
    assert kept.equals(profiles(engine))
    return kept


def member_profile(engine: Engine, code: str) -> dict[str, object]:
    frame = read_frame(
        engine,
        "SELECT p.orders_total, p.spend_total_cents, p.top_categories FROM profiles p"
        f" JOIN members m ON m.id = p.member_id WHERE m.code = '{code}'",
    )
    return frame.row(0, named=True)


def test_a_refresh_reads_from_the_store_only_the_lines_its_copy_lacks(store: Engine) -> None:
    add_orders(store, "M1", "水果", "乳品")
    refresh(engine=store, as_of=AS_OF)
    assert copy_of(store, "order_items") is not None
    add_orders(store, "M1", "宠物", days_ago=0)

    copy = open_copy(store, CATEGORICAL_ITEMS_SCAN)

    assert sum(frame.height for frame in copy.frames) == 2
    assert copy.rest.rowids == (3, 4)  # the one line added since


def test_orders_imported_after_a_refresh_count_in_the_next(store: Engine) -> None:
    add_orders(store, "M1", "水果")
    refresh(engine=store, as_of=AS_OF)
    assert member_profile(store, "M1")["orders_total"] == 1

    add_orders(store, "M1", "宠物", "宠物", days_ago=0)
    add_orders(store, "M2", "乳品")

    assert_as_from_the_store(store)
    assert member_profile(store, "M1")["orders_total"] == 2
    assert member_profile(store, "M2")["orders_total"] == 1


def test_orders_and_lines_changed_in_place_are_read_again(store: Engine) -> None:
    add_orders(store, "M1", "水果", "水果")
    add_orders(store, "M2", "乳品")
    refresh(engine=store, as_of=AS_OF)
    with store.begin() as connection:
        connection.execute(text("UPDATE order_items SET category = '宠物' WHERE id = 1"))
        connection.execute(text("UPDATE orders SET amount_cents = 55500 WHERE id = 1"))

    assert_as_from_the_store(store)
    assert "宠物" in str(member_profile(store, "M1")["top_categories"])
    assert member_profile(store, "M1")["spend_total_cents"] == 55_500


def test_deleted_orders_leave_the_profiles(store: Engine) -> None:
    add_orders(store, "M1", "水果", days_ago=3)
    add_orders(store, "M1", "乳品", days_ago=2)
    add_orders(store, "M2", "宠物")
    refresh(engine=store, as_of=AS_OF)
    with store.begin() as connection:  # its line goes with it
        connection.execute(text("DELETE FROM orders WHERE id = 1"))

    assert_as_from_the_store(store)
    assert member_profile(store, "M1")["orders_total"] == 1
    assert "水果" not in str(member_profile(store, "M1")["top_categories"])


def test_another_store_put_in_its_place_is_read_whole(store: Engine, tmp_path: Path) -> None:
    add_orders(store, "M1", "水果", days_ago=2)
    add_orders(store, "M1", "乳品")
    refresh(engine=store, as_of=AS_OF)
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrate.upgrade(other)
    add_orders(other, "M1", "宠物", days_ago=2)
    add_orders(other, "M1", "乳品")  # the same last line and order as the first store's
    other.dispose()
    store.dispose()
    Path(str(store.url.database)).unlink()
    (tmp_path / "other.db").rename(str(store.url.database))

    assert_as_from_the_store(store)
    assert "宠物" in str(member_profile(store, "M1")["top_categories"])


def test_a_store_put_back_from_a_backup_and_added_to_is_read_whole(
    store: Engine, tmp_path: Path
) -> None:
    add_orders(store, "M1", "水果")
    store.dispose()
    backup = tmp_path / "backup.db"
    shutil.copy(str(store.url.database), backup)
    add_orders(store, "M1", "乳品")
    refresh(engine=store, as_of=AS_OF)  # the copy holds the line the backup lacks
    store.dispose()
    shutil.copy(backup, str(store.url.database))
    add_orders(store, "M2", "宠物")  # takes the same ids as that line

    assert_as_from_the_store(store)
    assert member_profile(store, "M1")["orders_total"] == 1
    assert member_profile(store, "M2")["orders_total"] == 1


def lines_copied(engine: Engine) -> Path:
    """The folder of the copy of the lines, after a refresh of one order of member M1."""
    add_orders(engine, "M1", "水果")
    refresh(engine=engine, as_of=AS_OF)
    manifest = copy_of(engine, "order_items")
    assert manifest is not None
    return manifest.parent


def test_a_damaged_copy_is_set_aside(store: Engine) -> None:
    next(lines_copied(store).glob("*.arrow")).write_bytes(b"not an Arrow file")
    add_orders(store, "M1", "乳品", days_ago=0)

    assert_as_from_the_store(store)
    assert member_profile(store, "M1")["orders_total"] == 2


def test_a_store_whose_changes_are_not_marked_keeps_no_copy(store: Engine) -> None:
    with store.begin() as connection:
        connection.execute(text("DROP TRIGGER order_items_updated_marked"))
    add_orders(store, "M1", "水果")

    refresh(engine=store, as_of=AS_OF)

    assert copy_of(store, "order_items") is None
    assert copy_of(store, "orders") is not None
    assert member_profile(store, "M1")["orders_total"] == 1


def test_segment_counts_over_order_history_read_through_the_copies(store: Engine) -> None:
    add_orders(store, "M1", "水果", days_ago=3)
    add_orders(store, "M2", "水果", days_ago=2)
    rule = 'orders_in("水果", 30d) >= 1'
    assert segments.count(engine=store, rule=rule, today=AS_OF)["count"] == 2
    assert copy_of(store, "order_items") is not None
    with store.begin() as connection:
        connection.execute(text("UPDATE order_items SET category = '乳品' WHERE id = 1"))
    add_orders(store, "M3", "水果", days_ago=1)
    snapshot.invalidate(store)  # as a new process would

    assert segments.count(engine=store, rule=rule, today=AS_OF)["count"] == 2  # M2 and M3


def test_each_day_adds_a_segment_until_the_copy_is_written_again_as_one(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scancopies, "MAX_SEGMENTS", 3)
    for day in range(4):
        add_orders(store, f"M{day + 1}", "水果", days_ago=10 - day)
        refresh(engine=store, as_of=AS_OF)
        manifest = copy_of(store, "order_items")
        assert manifest is not None
        segments = json.loads(manifest.read_text())["segments"]
        assert len(segments) == (day + 1 if day < 3 else 1)
    with store.begin() as connection:  # a line in the middle of the joined copy
        connection.execute(text("UPDATE order_items SET category = '宠物' WHERE id = 3"))

    assert_as_from_the_store(store)
    assert "宠物" in str(member_profile(store, "M3")["top_categories"])
    assert member_profile(store, "M4")["orders_total"] == 1


def test_files_no_copy_lists_are_removed_once_old(store: Engine) -> None:
    folder = lines_copied(store)
    old, recent, failed = folder / "old.arrow", folder / "recent.arrow", folder / "in-failed"
    old.write_bytes(b"left by an earlier save")
    recent.write_bytes(b"another save's, not listed yet")
    failed.mkdir()
    (failed / "0000.arrow").write_bytes(b"a read that stopped")
    hours_ago = time.time() - 2 * scancopies.STALE_SECONDS
    for path in (old, failed):
        os.utime(path, (hours_ago, hours_ago))
    add_orders(store, "M1", "乳品", days_ago=0)

    refresh(engine=store, as_of=AS_OF)

    assert recent.exists()
    assert not old.exists() and not failed.exists()
    assert member_profile(store, "M1")["orders_total"] == 2


def test_a_serving_process_sees_lines_changed_in_place(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "RECHECK_INTERVAL", 0.0)
    add_orders(store, "M1", "水果")
    add_orders(store, "M2", "水果")
    rule = 'orders_in("水果", 30d) >= 1'
    assert segments.count(engine=store, rule=rule, today=AS_OF)["count"] == 2
    with store.begin() as connection:  # as many lines as before, the same highest id
        connection.execute(text("UPDATE order_items SET category = '乳品' WHERE id = 1"))

    assert segments.count(engine=store, rule=rule, today=AS_OF)["count"] == 1
