"""Purchase history read in bulk as Polars frames: one row per order line, or per order.

Both loaders scan a table once (`tidings.db.read_frame`) and join in Polars; the scans are
also given as `TableScan`s, with the step that finishes their frames, for callers that read
several tables at once (`tidings.scans.read_tables_in_children`). Text columns that may be
empty are read through COALESCE so that each column has one type from its first block on;
the empty text is turned back into null here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl
from sqlalchemy import Engine

from tidings.db import read_frame
from tidings.scans import TableScan

UTC_TIME = pl.Datetime("us", "UTC")

ORDER_SCHEMA: dict[str, Any] = {
    "order_id": pl.Int64,
    "member_id": pl.Int64,
    "store_id": pl.Int64,
    "ordered_at": UTC_TIME,
    "amount_cents": pl.Int64,
}
LINE_SCHEMA: dict[str, Any] = {
    "order_id": pl.Int64,
    "sku": pl.String,
    "category": pl.String,
    "quantity": pl.Int64,
    "amount_cents": pl.Int64,
    "discounted": pl.Boolean,
}
ORDER_LINE_COLUMNS = (
    "member_id",
    "order_id",
    "ordered_at",
    "store_id",
    "amount_cents",
    "quantity",
    "category",
    "sku",
    "discounted",
)


ORDERS_SCAN = TableScan(
    table="orders",
    columns="id AS order_id, member_id, store_id, ordered_at, amount_cents",
    schema=ORDER_SCHEMA,
    slices=2,
)
ORDER_ITEMS_SCAN = TableScan(
    table="order_items",
    columns="order_id, COALESCE(sku, '') AS sku, COALESCE(category, '') AS category,"
    " COALESCE(quantity, 1) AS quantity, amount_cents,"
    " COALESCE(discounted, FALSE) AS discounted",
    schema=LINE_SCHEMA,
    slices=4,
)

# The lines as ORDER_ITEMS_SCAN reads them, but with sku and category categorical from the
# start (a child reading them hands each text back once), in eight slices so that each child
# holds little at a time: the scan whose copy a SQLite store keeps (`tidings.scancopies`).
CATEGORICAL_ITEMS_SCAN = dataclasses.replace(
    ORDER_ITEMS_SCAN, categorical=("sku", "category"), slices=8
)


def orders(engine: Engine) -> pl.DataFrame:
    """Every order: `order_id, member_id, store_id, ordered_at, amount_cents`."""
    return finish_orders(read_frame(engine, ORDERS_SCAN.sql(), schema=ORDERS_SCAN.schema))


def finish_orders(frame: pl.DataFrame) -> pl.DataFrame:
    """The orders as `orders` returns them, from the rows of ORDERS_SCAN."""
    return frame.select(list(ORDER_SCHEMA))


def order_items(engine: Engine) -> pl.DataFrame:
    """Every order line as stored: `order_id, sku, category, quantity, amount_cents, discounted`."""
    scan = ORDER_ITEMS_SCAN
    return finish_order_items(read_frame(engine, scan.sql(), schema=scan.schema))


def finish_order_items(frame: pl.DataFrame) -> pl.DataFrame:
    """The lines as `order_items` returns them, from the rows of ORDER_ITEMS_SCAN."""
    return frame.with_columns(
        pl.col("sku").replace("", None),
        pl.col("category").replace("", None),
    )


def join_lines(items: pl.DataFrame, orders_frame: pl.DataFrame) -> pl.DataFrame:
    """Order lines (`order_items`) with their order's member, time and store."""
    heads = orders_frame.select("order_id", "member_id", "ordered_at", "store_id")
    return items.join(heads, on="order_id", how="inner").select(ORDER_LINE_COLUMNS)


def order_lines(engine: Engine, *, orders_frame: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every order line with its order's member, store and time (amount is the line's).

    Columns: `member_id, order_id, ordered_at (UTC), store_id, amount_cents, quantity,
    category, sku, discounted`. Pass `orders_frame` (from `orders`) to skip a second scan.
    """
    if orders_frame is None:
        orders_frame = orders(engine)
    return join_lines(order_items(engine), orders_frame)


def products(engine: Engine) -> pl.DataFrame:
    """Every product's `sku, name, category, pack_size_days` (days one pack lasts, or null)."""
    frame = read_frame(
        engine,
        "SELECT sku, name, COALESCE(category, '') AS category, pack_size_days FROM products",
        schema={
            "sku": pl.String,
            "name": pl.String,
            "category": pl.String,
            "pack_size_days": pl.Int64,
        },
    )
    return frame.with_columns(pl.col("category").replace("", None))
