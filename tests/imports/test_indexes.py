"""Indexes an import builds after its load: in small runs sorted on threads, after which the
import's connection has its own settings back."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from sqlalchemy import Engine, inspect, text

from tidings.bulk import bulk_store
from tidings.db import session_scope
from tidings.imports.indexes import restore_indexes
from tidings.members.models import Member

UTC_TIME = pl.Datetime("us", "UTC")


def test_an_index_built_after_a_load_holds_every_row_and_the_cache_comes_back(
    sqlite_engine: Engine,
) -> None:
    with session_scope(sqlite_engine) as db_session:
        member = Member(code="M1")
        db_session.add(member)
        db_session.flush()
        member_id = member.id
    count = 20_000
    at = datetime(2026, 1, 1, tzinfo=UTC)
    orders = pl.DataFrame(
        {
            "id": range(1, count + 1),
            "external_id": [f"O{n}" for n in range(count)],
            "member_id": [member_id] * count,
            "ordered_at": pl.datetime_range(at, at.replace(year=2029), "1h", eager=True)[:count],
            "amount_cents": [100] * count,
            "discount_cents": [0] * count,
            "created_at": [at] * count,
        },
        schema_overrides={"ordered_at": UTC_TIME, "created_at": UTC_TIME},
    )
    with bulk_store(sqlite_engine) as store:
        store.execute("DROP INDEX ix_orders_ordered_at")
        store.append("orders", orders)
        cache = store.frame("PRAGMA cache_size", schema={"c": pl.Int64})["c"][0]
        store.execute("PRAGMA cache_size = -65536")
        assert restore_indexes(store, ["orders"]) == ["ix_orders_ordered_at"]
        assert store.frame("PRAGMA cache_size", schema={"c": pl.Int64})["c"][0] == -65536
        store.execute(f"PRAGMA cache_size = {cache}")  # the pooled connection, as it was
        store.commit()
    names = {index["name"] for index in inspect(sqlite_engine).get_indexes("orders")}
    assert "ix_orders_ordered_at" in names
    with sqlite_engine.connect() as connection:
        plan = connection.execute(
            text("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM orders WHERE ordered_at >= :at"),
            {"at": "2027-06-01"},
        ).all()
        assert "ix_orders_ordered_at" in str(plan)
        later = connection.execute(
            text("SELECT COUNT(*) FROM orders WHERE ordered_at >= :at"), {"at": "2027-06-01"}
        ).scalar_one()
    assert later == orders.filter(pl.col("ordered_at") >= datetime(2027, 6, 1, tzinfo=UTC)).height
