"""A bulk store whose references SQLite checks a frame at a time, not row by row: a frame
that refers to nothing is refused whole, and every other session is checked row by row."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import polars as pl
import pytest
from sqlalchemy import Engine, func, select, text

from tidings import references
from tidings.bulk import bulk_store
from tidings.db import session_scope
from tidings.members import service as members
from tidings.members.models import Member, Store
from tidings.orders.models import Order

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
UTC_TIME = pl.Datetime("us", "UTC")


def _member_and_store(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as db_session:
        store = Store(code="S1", name="一店")
        member = Member(code="M1", phone="+8613800000001")
        db_session.add_all([store, member])
        db_session.flush()
        return member.id, store.id


def _orders(member_ids: list[int], store_ids: list[int | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "external_id": [f"O{n}" for n in range(len(member_ids))],
            "member_id": member_ids,
            "store_id": store_ids,
            "ordered_at": [NOW] * len(member_ids),
            "amount_cents": [1_000] * len(member_ids),
            "discount_cents": [0] * len(member_ids),
            "created_at": [NOW] * len(member_ids),
        },
        schema_overrides={"store_id": pl.Int64, "ordered_at": UTC_TIME, "created_at": UTC_TIME},
    )


def _order_count(engine: Engine) -> int:
    with session_scope(engine) as db_session:
        return int(db_session.scalar(select(func.count()).select_from(Order)) or 0)


def test_a_frame_whose_references_all_exist_goes_in_whole(engine: Engine) -> None:
    member, store = _member_and_store(engine)
    with bulk_store(engine, references_per_frame=True) as bulk:
        assert bulk.append("orders", _orders([member] * 3, [store, None, store])) == 3
        bulk.commit()
    assert _order_count(engine) == 3


@pytest.mark.parametrize("broken", ["member_id", "store_id"])
def test_a_frame_with_one_reference_to_nothing_is_refused_and_none_of_it_written(
    engine: Engine, broken: str
) -> None:
    member, store = _member_and_store(engine)
    orders = _orders([member] * 3, [store] * 3).with_columns(
        pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.lit(9_999, dtype=pl.Int64))
        .otherwise(pl.col(broken))
        .alias(broken)
    )
    with (
        pytest.raises(Exception, match=r"(?i)foreign key"),
        bulk_store(engine, references_per_frame=True) as bulk,
    ):
        bulk.append("orders", orders)
        bulk.commit()
    assert _order_count(engine) == 0


def test_an_update_that_refers_to_nothing_is_refused(engine: Engine) -> None:
    member, _ = _member_and_store(engine)
    with (
        pytest.raises(Exception, match=r"(?i)foreign key"),
        bulk_store(engine, references_per_frame=True) as bulk,
    ):
        members.update_members(
            store=bulk, members=pl.DataFrame({"id": [member], "store_id": [9_999]})
        )
        bulk.commit()
    with session_scope(engine) as db_session:
        assert db_session.get(Member, member).store_id is None  # type: ignore[union-attr]


def test_after_a_per_frame_store_every_other_write_is_checked_row_by_row(engine: Engine) -> None:
    """SQLite's setting belongs to the pooled connection: it must not outlive the store."""
    member, store = _member_and_store(engine)
    with bulk_store(engine, references_per_frame=True) as bulk:
        bulk.append("orders", _orders([member], [store]))
        bulk.commit()
    for attempt in range(3):
        with (
            pytest.raises(Exception, match=r"(?i)foreign key"),
            session_scope(engine) as db_session,
        ):
            db_session.execute(
                text(
                    "INSERT INTO orders (external_id, member_id, ordered_at, amount_cents,"
                    " discount_cents, created_at) VALUES (:id, 9999, :at, 100, 0, :at)"
                ),
                {"id": f"X{attempt}", "at": "2026-05-01 09:00:00.000000"},
            )
    assert _order_count(engine) == 1


def _items(order_ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": order_ids,
            "line_no": [1] * len(order_ids),
            "sku": ["P1"] * len(order_ids),
            "quantity": [1] * len(order_ids),
            "amount_cents": [1_000] * len(order_ids),
            "discounted": [False] * len(order_ids),
        }
    )


def test_an_order_deleted_by_another_connection_is_looked_up_again(engine: Engine) -> None:
    """A per-frame store remembers the orders it wrote, for their lines: until another
    connection writes to the store, which may have removed one."""
    member, store = _member_and_store(engine)
    orders = _orders([member] * 2, [store] * 2).with_columns(id=pl.Series([101, 102]))
    with bulk_store(engine, references_per_frame=True) as bulk:
        bulk.append("orders", orders)
        bulk.commit()
        bulk.append("order_items", _items([101]))
        bulk.commit()
        with session_scope(engine) as db_session:
            db_session.execute(text("DELETE FROM orders WHERE id = 102"))
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            bulk.append("order_items", _items([102]))
            bulk.commit()


def test_members_noted_as_read_are_looked_up_again_once_another_connection_deletes_one(
    engine: Engine,
) -> None:
    member, store = _member_and_store(engine)
    with session_scope(engine) as db_session:
        other = Member(code="M2", phone="+8613800000002")
        db_session.add(other)
        db_session.flush()
        gone = other.id
    with bulk_store(engine, references_per_frame=True) as bulk:
        bulk.note_found("members", pl.Series([member, gone]))
        bulk.append("orders", _orders([member], [store]))
        bulk.commit()
        with session_scope(engine) as db_session:
            db_session.execute(text("DELETE FROM members WHERE id = :id"), {"id": gone})
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            bulk.append("orders", _orders([gone], [store]).with_columns(external_id=pl.lit("X")))
            bulk.commit()
    assert _order_count(engine) == 1


def test_known_keys_are_told_apart_from_unknown_ones_in_and_between_runs_of_ids() -> None:
    raw = sqlite3.connect(":memory:")
    found = references.FoundKeys()
    found.add(raw, "orders", pl.Series([1, 2, 3, 4, 5]))
    assert found.unseen(raw, "orders", pl.Series([0, 3, 6])).to_list() == [0, 6]
    found.add(raw, "orders", pl.Series([8, 9]))
    assert found.unseen(raw, "orders", pl.Series([5, 6, 7, 8, 10])).to_list() == [6, 7, 10]


def test_orders_a_store_rolled_back_are_looked_up_again(engine: Engine) -> None:
    member, store = _member_and_store(engine)
    orders = _orders([member], [store]).with_columns(id=pl.Series([101]))
    with bulk_store(engine, references_per_frame=True) as bulk:
        bulk.append("orders", orders)
        bulk.session.rollback()
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            bulk.append("order_items", _items([101]))
            bulk.commit()
    assert _order_count(engine) == 0


@pytest.mark.parametrize("declared", ["REFERENCES shelves (aisle, slot)", "REFERENCES shelves"])
def test_a_key_over_two_columns_is_checked_on_both(declared: str) -> None:
    """The schema's keys are one column each; a key over two is checked whole, the parent's
    columns named or taken from its primary key."""
    raw = sqlite3.connect(":memory:")
    raw.executescript(
        "CREATE TABLE shelves (aisle TEXT, slot INTEGER, PRIMARY KEY (aisle, slot));"
        f"CREATE TABLE items (id INTEGER PRIMARY KEY, aisle TEXT, slot INTEGER,"
        f" FOREIGN KEY (aisle, slot) {declared});"
        "INSERT INTO shelves VALUES ('A', 1), ('A', 2), ('B', 1);"
    )
    found = references.FoundKeys()
    kept = pl.DataFrame({"aisle": ["A", "B", "A", None], "slot": [2, 1, 2, 9]})
    references.check_frame(raw, "items", kept, found)  # a null in the key refers to nothing
    mixed = pl.DataFrame({"aisle": ["A", "B"], "slot": [1, 2]})  # B-2 is no shelf
    with pytest.raises(sqlite3.IntegrityError, match=r"items\.aisle, slot .*B.*2.* shelves"):
        references.check_frame(raw, "items", mixed, found)
