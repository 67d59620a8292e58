"""Importing the retailer's stores (code, name, city, type, coordinates), upserting by code."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from tidings.imports import ImportResult, reasons
from tidings.imports.parsing import text_fields
from tidings.imports.run import import_catalogue
from tidings.members import service

STORE_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "store_code", "门店编码", "门店代码", "编码", "门店编号", "编号"),
    "name": ("name", "store_name", "门店名称", "门店", "名称"),
    "city": ("city", "城市"),
    "type": ("type", "store_type", "门店类型", "类型"),
    "latitude": ("latitude", "lat", "纬度"),
    "longitude": ("longitude", "lng", "lon", "经度"),
}


def clean_stores(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cleans store rows; returns (one row per code, the last one winning; problems)."""
    frame = text_fields(frame, tuple(STORE_ALIASES))
    position = {
        name: pl.col(name).cast(pl.Float64, strict=False).alias(f"_{name}")
        for name in ("latitude", "longitude")
    }
    frame = frame.with_columns(position.values())
    problem = reasons(
        pl.when(pl.col("code").is_null()).then(pl.lit("no store code")),
        pl.when(pl.col("name").is_null()).then(pl.lit("no store name")),
        *(
            pl.when(pl.col(name).is_not_null() & pl.col(f"_{name}").is_null()).then(
                pl.format(f"{name} '{{}}' is not a number", name)
            )
            for name in position
        ),
    )
    frame = frame.with_columns(problem.alias("reason"))
    rejected = frame.filter(pl.col("reason").is_not_null()).select("line", "reason")
    good = frame.filter(pl.col("reason").is_null()).select(
        "code", "name", "city", "type", pl.col("_latitude").alias("latitude"),
        pl.col("_longitude").alias("longitude"),
    )  # fmt: skip
    return good.unique("code", keep="last", maintain_order=True), rejected


def import_stores(
    *,
    engine: Engine,
    path: Path,
    mapping: Path | None = None,
    rejects_path: Path | None = None,
    progress: bool = False,
) -> ImportResult:
    """Imports a store CSV (code, name, city, type, latitude, longitude), upserting by code."""
    return import_catalogue(
        engine=engine,
        path=path,
        aliases=STORE_ALIASES,
        required=("code", "name"),
        clean=clean_stores,
        upsert=lambda store, stores: service.upsert_stores(store=store, stores=stores),
        mapping=mapping,
        rejects_path=rejects_path,
        progress=progress,
    )
