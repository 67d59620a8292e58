"""Order and product operations on the store: set-based writes for imports and the batch API.

The functions take a `BulkStore` (one connection, one transaction) and never commit.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tidings.bulk import BulkStore
from tidings.imports.loading import key_rows, keys_param
from tidings.members.service import UTC_TIME

ORDER_TYPES = {
    "external_id": "VARCHAR(100)",
    "member_id": "BIGINT",
    "store_id": "BIGINT",
    "amount_cents": "BIGINT",
    "discount_cents": "BIGINT",
    "order_id": "BIGINT",
    "id": "BIGINT",
    "sku": "VARCHAR(64)",
    "name": "VARCHAR(200)",
    "category": "VARCHAR(100)",
    "pack_size_days": "BIGINT",
    "price_cents": "BIGINT",
}


def _stage(store: BulkStore, table: str, frame: pl.DataFrame) -> None:
    time_type = "TEXT" if store.dialect == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    columns = {
        name: time_type if name in ("ordered_at", "created_at") else ORDER_TYPES[name]
        for name in frame.columns
    }
    store.create_temp(table, columns)
    store.append(table, frame)


def last_order_id(*, store: BulkStore) -> int:
    """The highest order id in the store (0 when there is none)."""
    frame = store.frame("SELECT COALESCE(MAX(id), 0) FROM orders", schema={"id": pl.Int64})
    return int(frame["id"][0])


def insert_orders(*, store: BulkStore, orders: pl.DataFrame) -> pl.DataFrame:
    """Inserts the orders whose `external_id` is new; returns every one's `external_id`, `id`."""
    schema = {"external_id": pl.String, "order_id": pl.Int64}
    columns = ", ".join(orders.columns)
    if store.dialect != "sqlite":
        _stage(store, "import_orders", orders)
        store.execute(
            f"INSERT INTO orders ({columns}) SELECT {columns} FROM import_orders s"
            " WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.external_id = s.external_id)"
        )
        return store.frame(
            "SELECT s.external_id, o.id FROM import_orders s JOIN orders o"
            " ON o.external_id = s.external_id",
            schema=schema,
        )
    # SQLite has one writer at a time: the new orders take the ids after the last one.
    known = store.frame(
        f"SELECT o.external_id, o.id FROM {key_rows(store)}"
        " JOIN orders o ON o.external_id = k.value",
        (keys_param(store, orders["external_id"]),),
        schema=schema,
    )
    first = last_order_id(store=store) + 1
    new = orders.join(known, on="external_id", how="anti", maintain_order="left").with_columns(
        pl.int_range(first, first + pl.len(), dtype=pl.Int64).alias("id")
    )
    store.append("orders", new)
    return pl.concat([known, new.select("external_id", pl.col("id").alias("order_id"))])


def line_counts(*, store: BulkStore, order_ids: pl.Series) -> pl.DataFrame:
    """How many lines each of the given orders has already (`order_id`, `lines_before`)."""
    _stage(store, "import_order_ids", order_ids.to_frame("order_id"))
    return store.frame(
        "SELECT k.order_id, COUNT(i.id) FROM import_order_ids k"
        " LEFT JOIN order_items i ON i.order_id = k.order_id GROUP BY k.order_id",
        schema={"order_id": pl.Int64, "lines_before": pl.Int64},
    )


def add_to_orders(*, store: BulkStore, totals: pl.DataFrame) -> None:
    """Adds amounts of lines appended to orders created earlier in the same import."""
    if totals.height == 0:
        return
    _stage(store, "import_order_totals", totals.rename({"order_id": "id"}))
    store.execute(
        "UPDATE orders SET amount_cents = orders.amount_cents + t.amount_cents,"
        " discount_cents = orders.discount_cents + t.discount_cents"
        " FROM import_order_totals t WHERE orders.id = t.id"
    )


def insert_items(*, store: BulkStore, items: pl.DataFrame) -> int:
    """Inserts order lines (columns named as the order_items table's)."""
    return store.append("order_items", items)


MEMBER_KEYS = {"member_id": pl.Int64, "code": pl.String, "phone": pl.String}


def member_keys(*, store: BulkStore, after_id: int = 0) -> pl.DataFrame:
    """Members' ids with their code and phone (those above `after_id`), to resolve order lines."""
    return store.frame(
        "SELECT id, code, phone FROM members WHERE erased_at IS NULL AND id > ?",
        (after_id,),
        schema=MEMBER_KEYS,
    )


def member_keys_of(*, store: BulkStore, codes: pl.Series, phones: pl.Series) -> pl.DataFrame:
    """The keys (as `member_keys`) of the members with one of `codes` or one of `phones`,
    each found through its unique index."""
    found = [
        store.frame(
            f"SELECT m.id, m.code, m.phone FROM {key_rows(store)}"
            f" JOIN members m ON m.{column} = k.value WHERE m.erased_at IS NULL",
            (keys_param(store, keys),),
            schema=MEMBER_KEYS,
        )
        for column, keys in (("code", codes), ("phone", phones))
        if keys.null_count() < keys.len()
    ]
    return pl.concat([pl.DataFrame(schema=MEMBER_KEYS), *found]).unique("member_id", keep="first")


def product_categories(*, store: BulkStore) -> pl.DataFrame:
    """Every product's sku and category."""
    return store.frame(
        "SELECT sku, category FROM products", schema={"sku": pl.String, "category": pl.String}
    )


def upsert_products(*, store: BulkStore, products: pl.DataFrame) -> tuple[int, int]:
    """Inserts new products and updates changed ones by sku; returns (inserted, updated)."""
    columns = ["sku", "name", "category", "pack_size_days", "price_cents"]
    schema: dict[str, Any] = {"id": pl.Int64, **{name: products.schema[name] for name in columns}}
    current = store.frame(f"SELECT id, {', '.join(columns)} FROM products", schema=schema)
    joined = products.join(current, on="sku", how="left", suffix="_old")
    new = joined.filter(pl.col("id").is_null()).select(columns)
    differs = pl.any_horizontal(
        pl.col(name).ne_missing(pl.col(f"{name}_old")) for name in columns[1:]
    )
    changed = joined.filter(pl.col("id").is_not_null() & differs).select("id", *columns[1:])
    store.append("products", new)
    if changed.height:
        _stage(store, "import_product_updates", changed)
        assignments = ", ".join(f"{name} = u.{name}" for name in columns[1:])
        store.execute(
            f"UPDATE products SET {assignments} FROM import_product_updates u"
            " WHERE products.id = u.id"
        )
    return new.height, changed.height


def create_members(*, store: BulkStore, members: pl.DataFrame, now: Any) -> int:
    """Creates bare members (code and/or phone) for order lines of unknown people."""
    if members.height == 0:
        return 0
    return store.append(
        "members",
        members.select("code", "phone", "phone_status").with_columns(
            pl.lit(False).alias("birthday_is_lunar"),
            pl.lit(0).alias("points"),
            pl.lit(now, dtype=UTC_TIME).alias("created_at"),
            pl.lit(now, dtype=UTC_TIME).alias("updated_at"),
        ),
    )
