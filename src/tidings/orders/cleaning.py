"""Cleaning order lines, shared by the CSV import and the batch API.

`clean_orders` turns a frame of text columns (one per field, plus `line`) into good lines with
exact cents and UTC times, and problems with the line and a reason a person can act on.
"""

from __future__ import annotations

import polars as pl

from tidings.imports import PERSON_ALIASES, cents, local_time, reasons, whole_number, yes_no
from tidings.imports.parsing import (
    TwoStep,
    common_cents,
    common_local_time,
    common_whole_number,
    text_fields,
    with_parsed,
)
from tidings.members.phone import normalise_phones
from tidings.orders.products_import import CATEGORY_ALIASES, SKU_ALIASES

ORDER_ALIASES: dict[str, tuple[str, ...]] = {
    "order_id": ("order_id", "order_no", "order_number", "订单号", "订单编号", "单号", "小票号"),
    "ordered_at": ("ordered_at", "order_time", "purchased_at", "下单时间", "订单时间", "交易时间",
                   "购买时间"),
    **PERSON_ALIASES,
    "amount": ("amount", "paid", "total", "金额", "实付金额", "支付金额", "实付", "销售金额"),
    "sku": SKU_ALIASES,
    "category": CATEGORY_ALIASES,
    "quantity": ("quantity", "qty", "数量", "件数"),
    "discount": ("discount", "折扣", "是否折扣", "优惠", "优惠金额", "折扣金额"),
}  # fmt: skip
ORDER_FIELDS = tuple(ORDER_ALIASES)
MAX_ORDER_ID_CHARS = 100


def clean_orders(
    frame: pl.DataFrame, *, region: str, timezone: str, trimmed: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cleans order lines; returns (good lines, problems as `line`, `reason`, `rejected`)."""
    frame = text_fields(frame, ORDER_FIELDS, trimmed=trimmed)
    frame = normalise_phones(frame, "phone", region=region).with_columns(
        yes_no(pl.col("discount")).alias("_discounted")
    )
    # A discount that is not yes/no may be the amount taken off.
    frame = frame.with_columns(
        pl.when(pl.col("_discounted").is_null()).then("discount").alias("_discount_text")
    )
    frame = with_parsed(frame, order_parsers(timezone))
    bad_discount = pl.col("discount").is_not_null() & pl.col("_discounted").is_null()
    problem = reasons(
        pl.when(pl.col("order_id").is_null()).then(pl.lit("no order_id")),
        pl.when(pl.col("order_id").str.len_chars() > MAX_ORDER_ID_CHARS).then(
            pl.lit(f"order_id is longer than {MAX_ORDER_ID_CHARS} characters")
        ),
        pl.when(pl.col("ordered_at").is_null()).then(pl.lit("no ordered_at")),
        pl.when(pl.col("ordered_at").is_not_null() & pl.col("_ordered_at").is_null()).then(
            pl.format("ordered_at '{}' is not a date and time", "ordered_at")
        ),
        pl.when(pl.col("amount").is_null()).then(pl.lit("no amount")),
        pl.when(pl.col("amount").is_not_null() & pl.col("amount_cents").is_null()).then(
            pl.format("amount '{}' is not an amount in yuan (like 12.50)", "amount")
        ),
        pl.when(pl.col("member_code").is_null() & pl.col("phone_e164").is_null()).then(
            pl.coalesce("phone_problem", pl.lit("no phone and no member code"))
        ),
        pl.when(pl.col("quantity").is_not_null() & pl.col("_quantity").is_null()).then(
            pl.format("quantity '{}' is not a whole number", "quantity")
        ),
        pl.when(bad_discount & pl.col("_discount_cents").is_null()).then(
            pl.format("discount '{}' is neither yes/no nor an amount in yuan", "discount")
        ),
    )
    frame = frame.with_columns(problem.alias("_reason"))
    rejected = frame.filter(pl.col("_reason").is_not_null()).select(
        "line", pl.col("_reason").alias("reason"), pl.lit(True).alias("rejected")
    )
    discount_cents = pl.when(bad_discount).then("_discount_cents").otherwise(0)
    good = frame.filter(pl.col("_reason").is_null()).select(
        "line",
        pl.col("order_id").alias("external_id"),
        pl.col("_ordered_at").alias("ordered_at"),
        "amount_cents",
        discount_cents.fill_null(0).alias("discount_cents"),
        pl.coalesce("_discounted", discount_cents > 0).fill_null(False).alias("discounted"),
        pl.col("member_code").alias("code"),
        pl.col("phone_e164").alias("phone"),
        pl.col("phone_status"),
        pl.col("store_code").alias("store_ref"),
        "sku",
        "category",
        pl.col("_quantity").fill_null(1).alias("quantity"),
    )
    return good, rejected


def order_parsers(timezone: str) -> dict[str, TwoStep]:
    """How each number and time of an order line is read."""
    col = pl.col
    amount, discount_amount = col("amount"), col("_discount_text")
    return {
        "_ordered_at": TwoStep(
            "ordered_at",
            common_local_time(col("ordered_at"), timezone),
            local_time(col("ordered_at"), timezone),
        ),
        "amount_cents": TwoStep("amount", common_cents(amount), cents(amount)),
        "_quantity": TwoStep(
            "quantity", common_whole_number(col("quantity")), whole_number(col("quantity"))
        ),
        "_discount_cents": TwoStep(
            "_discount_text", common_cents(discount_amount), cents(discount_amount)
        ),
    }
