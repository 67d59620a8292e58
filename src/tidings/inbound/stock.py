"""Store stock: imported from a CSV or the API, read to answer "库存 + product" replies.

A product is found by its name, fuzzily (rapidfuzz), so "蒙牛纯奶" finds 蒙牛纯牛奶 250ml.
The answer gives the member's own store first, then the nearest stores that have it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import polars as pl
from rapidfuzz import fuzz, process
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tidings import clock
from tidings.config import get_settings
from tidings.db import is_sqlite, session_scope
from tidings.imports.errors import ImportResult
from tidings.imports.run import open_import
from tidings.inbound.context import ReplyContext
from tidings.inbound.keywords import compact
from tidings.inbound.models import StockLevel
from tidings.members.models import Store
from tidings.orders.models import Product

STOCK_ALIASES: dict[str, tuple[str, ...]] = {
    "store_code": ("store_code", "store", "门店", "门店编码", "门店编号", "店号"),
    "sku": ("sku", "product_code", "item_code", "商品编码", "商品编号", "货号", "商品条码"),
    "quantity": ("quantity", "qty", "stock", "库存", "库存数量", "数量"),
}
NEARBY_STORES = 3  # stores named when the member's own has none
PRODUCT_MATCH_CUTOFF = 60  # rapidfuzz WRatio (0-100) below which no product is named
# Words of the request around the product's name: "库存 牛奶", "牛奶还有货吗".
_ASKING = re.compile(r"库存|kc|有没有货|还有货|有货|有没有|还有|查询|查一下|查|请问|吗|呢|stock")


def upsert_stock(db_session: Session, frame: pl.DataFrame) -> tuple[int, pl.DataFrame]:
    """Writes `frame` (line, store_code, sku, quantity as text); returns rows written and the
    problems (line, reason) of rows that name an unknown store or sku or no whole quantity."""
    stores: dict[str, int] = {
        code: i for code, i in db_session.execute(select(Store.code, Store.id))
    }
    products: dict[str, int] = {
        sku: i for sku, i in db_session.execute(select(Product.sku, Product.id))
    }
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    problems: list[dict[str, Any]] = []
    now = clock.now()
    for line, store_code, sku, quantity in frame.select(
        "line", "store_code", "sku", "quantity"
    ).iter_rows():
        store_id = stores.get((store_code or "").strip())
        product_id = products.get((sku or "").strip())
        amount = (quantity or "").strip()
        reason = None
        if store_id is None:
            reason = f"store '{store_code}' is unknown; import it with `tidings import stores`"
        elif product_id is None:
            reason = f"sku '{sku}' is unknown; import it with `tidings import products`"
        elif not re.fullmatch(r"\d{1,9}", amount):
            reason = f"quantity '{quantity}' is not a whole number of items"
        if reason:
            problems.append({"line": line, "reason": reason})
            continue
        assert store_id is not None and product_id is not None
        rows[(store_id, product_id)] = {
            "store_id": store_id,
            "product_id": product_id,
            "quantity": int(amount),
            "updated_at": now,
        }
    if rows:
        table = StockLevel.__table__
        dialect = sqlite if is_sqlite(db_session) else postgresql
        statement = dialect.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["store_id", "product_id"],
            set_={
                "quantity": statement.excluded.quantity,
                "updated_at": statement.excluded.updated_at,
            },
        )
        db_session.execute(statement, list(rows.values()))
    schema = {"line": pl.Int64, "reason": pl.String}
    return len(rows), pl.DataFrame(problems, schema=schema)


def import_stock(
    *,
    engine: Engine,
    path: Path,
    mapping: Path | None = None,
    rejects_path: Path | None = None,
    progress: bool = False,
) -> ImportResult:
    """Imports a stock CSV (store_code, sku, quantity), replacing each store's count."""
    result = ImportResult()
    with open_import(
        Path(path),
        aliases=STOCK_ALIASES,
        required=("store_code", "sku", "quantity"),
        mapping=mapping,
        rejects_path=rejects_path,
        result=result,
    ) as (csv, rejects):
        for raw in csv.batches(get_settings().import_batch_rows, progress=progress):
            with session_scope(engine) as session:
                written, problems = upsert_stock(session, csv.canonical(raw))
            rejects.write(raw, problems)
            result.rows += raw.height
            result.updated += written
            result.rejected += problems.height
    return result


def _distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(min(h, 1.0)))


def find_product(db_session: Session, query: str) -> tuple[int, str] | None:
    """The product whose name best matches `query`, or None when none is close."""
    if not query:
        return None
    products = db_session.execute(select(Product.id, Product.name)).all()
    names = {product_id: compact(name) for product_id, name in products}
    found = process.extractOne(query, names, scorer=fuzz.WRatio, score_cutoff=PRODUCT_MATCH_CUTOFF)
    if found is None:
        return None
    product_id = found[2]
    return product_id, dict(products)[product_id]


def stock_answer(db_session: Session, ctx: ReplyContext) -> tuple[str, dict[str, object]]:
    """The answer's name in texts.py and its fields, for a stock question."""
    query = _ASKING.sub("", compact(ctx.text))
    product = find_product(db_session, query)
    if product is None:
        return "stock_unknown", {"query": query or ctx.text[:20]}
    product_id, name = product
    levels = db_session.execute(
        select(Store.id, Store.name, Store.latitude, Store.longitude, StockLevel.quantity)
        .join(StockLevel, StockLevel.store_id == Store.id)
        .where(StockLevel.product_id == product_id, StockLevel.quantity > 0)
    ).all()
    mine = next((row for row in levels if row[0] == ctx.store_id), None)
    if mine is not None:
        return "stock_here", {"product": name, "store": mine[1], "quantity": mine[4]}
    if not levels:
        return "stock_none", {"product": name}
    here = (ctx.store_latitude, ctx.store_longitude)
    if here[0] is not None and here[1] is not None:
        ranked = sorted(
            (
                (_distance_km((here[0], here[1]), (row[2], row[3])), row)
                for row in levels
                if row[2] is not None and row[3] is not None
            ),
            key=lambda pair: pair[0],
        )
        nearby = "、".join(
            f"{row[1]}({distance:.1f}公里){row[4]}件" for distance, row in ranked[:NEARBY_STORES]
        )
    else:
        nearby = "、".join(f"{row[1]}{row[4]}件" for row in levels[:NEARBY_STORES])
    return "stock_nearby", {
        "product": name,
        "store": ctx.store_name or "您的门店",
        "nearby": nearby,
    }
