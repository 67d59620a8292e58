"""REST endpoints of this domain: the order-line batch import."""

from __future__ import annotations

import polars as pl
from fastapi import APIRouter

from tidings.bulk import BulkStore
from tidings.config import get_settings
from tidings.http import DbSession, require_scope
from tidings.members.api import batch_result, check_batch_size
from tidings.members.schemas import BatchResult
from tidings.orders.importer import ORDER_FIELDS, OrderBatches
from tidings.orders.reactions import react_to_orders
from tidings.orders.schemas import OrdersBatch

router = APIRouter(tags=["orders"])


@router.post(
    "/orders:batch", response_model=BatchResult, dependencies=[require_scope("orders:write")]
)
def orders_batch(body: OrdersBatch, db_session: DbSession) -> BatchResult:
    """Imports up to 10,000 order lines with the cleaning of the CSV import; idempotent."""
    check_batch_size(len(body.orders), "order lines")
    rows = [
        {name: None if value is None else str(value) for name, value in line.model_dump().items()}
        for line in body.orders
    ]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(ORDER_FIELDS, pl.String)).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("line")
    )
    batches = OrderBatches(
        store=BulkStore(db_session), create_members=body.create_members, expected_lines=frame.height
    )
    problems = batches.add(frame, last=True)
    batches.accrue_points()
    react_to_orders(db_session, first_order_id=batches.first_new_order, settings=get_settings())
    return batch_result(batches.result, problems)
