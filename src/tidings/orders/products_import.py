"""Importing the retailer's products (sku, name, category, pack size, price), upserting by sku."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from tidings.imports import ImportResult, cents, reasons, whole_number
from tidings.imports.parsing import text_fields
from tidings.imports.run import import_catalogue
from tidings.orders import service

# Shared with order files, whose lines name their product the same ways.
SKU_ALIASES = ("sku", "product_code", "item_code", "商品编码", "商品编号", "货号", "商品条码")
CATEGORY_ALIASES = ("category", "品类", "类别", "商品品类", "分类")
PRODUCT_ALIASES: dict[str, tuple[str, ...]] = {
    "sku": SKU_ALIASES,
    "name": ("name", "product_name", "商品名称", "名称", "品名"),
    "category": CATEGORY_ALIASES,
    "pack_size_days": ("pack_size_days", "pack_days", "使用天数", "周期天数", "包装天数"),
    "price": ("price", "单价", "价格", "售价"),
}


def clean_products(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cleans product rows; returns (one row per sku, the last one winning; problems)."""
    frame = text_fields(frame, tuple(PRODUCT_ALIASES))
    frame = frame.with_columns(
        whole_number(pl.col("pack_size_days")).alias("_days"),
        cents(pl.col("price")).alias("price_cents"),
    )
    problem = reasons(
        pl.when(pl.col("sku").is_null()).then(pl.lit("no sku")),
        pl.when(pl.col("name").is_null()).then(pl.lit("no name")),
        pl.when(pl.col("pack_size_days").is_not_null() & pl.col("_days").is_null()).then(
            pl.format("pack_size_days '{}' is not a whole number of days", "pack_size_days")
        ),
        pl.when(pl.col("price").is_not_null() & pl.col("price_cents").is_null()).then(
            pl.format("price '{}' is not an amount in yuan (like 12.50)", "price")
        ),
    )
    frame = frame.with_columns(problem.alias("reason"))
    rejected = frame.filter(pl.col("reason").is_not_null()).select("line", "reason")
    good = frame.filter(pl.col("reason").is_null()).select(
        "sku", "name", "category", pl.col("_days").alias("pack_size_days"), "price_cents"
    )
    return good.unique("sku", keep="last", maintain_order=True), rejected


def import_products(
    *,
    engine: Engine,
    path: Path,
    mapping: Path | None = None,
    rejects_path: Path | None = None,
    progress: bool = False,
) -> ImportResult:
    """Imports a product CSV (sku, name, category, pack_size_days, price), upserting by sku."""
    return import_catalogue(
        engine=engine,
        path=path,
        aliases=PRODUCT_ALIASES,
        required=("sku", "name"),
        clean=clean_products,
        upsert=lambda store, products: service.upsert_products(store=store, products=products),
        mapping=mapping,
        rejects_path=rejects_path,
        progress=progress,
    )
