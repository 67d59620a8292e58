"""Cleaning and importing order lines, shared by the CSV import and the batch API.

One row is one order line. Rows with the same `order_id` are lines of one order; the order's
member, time and store come from its first line, and a later line that says otherwise is
rejected. The order's amount is the sum of its lines. Orders are immutable by `order_id`:
re-importing a file skips the orders the store already has, so nothing is inserted twice and
nothing changes. Lines of one order that arrive in different batches of the same import are
all kept (the order is held back until its last line, or appended to when it is scattered).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.config import get_settings
from tidings.db import BulkStore, bulk_store
from tidings.imports import (
    PERSON_ALIASES,
    CsvSource,
    ImportResult,
    RejectsWriter,
    cents,
    local_time,
    reasons,
    whole_number,
    yes_no,
)
from tidings.imports.ahead import read_ahead
from tidings.imports.loading import file_import_cache, import_cache
from tidings.imports.parsing import (
    TwoStep,
    common_cents,
    common_local_time,
    common_whole_number,
    text_fields,
    with_parsed,
)
from tidings.loyalty import service as loyalty
from tidings.members.merging import NO_PROBLEMS
from tidings.members.phone import normalise_phones
from tidings.members.service import store_refs
from tidings.notifications.large_purchase import notify_large_orders
from tidings.orders import service
from tidings.orders.products_import import CATEGORY_ALIASES, SKU_ALIASES, import_products
from tidings.tracking.credits import attribute_orders
from tidings.triggers.reactions import orders_arrived

__all__ = ["ORDER_FIELDS", "OrderBatches", "clean_orders", "import_orders", "import_products"]

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
ITEM_COLUMNS = ("order_id", "line_no", "sku", "category", "quantity", "amount_cents", "discounted")
ACCRUAL_ORDERS = 500_000  # orders given their points at a time


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


@dataclass(frozen=True)
class CleanedLines:
    """A batch of order lines after cleaning: how many rows it had, good lines and problems."""

    rows: int
    good: pl.DataFrame
    problems: pl.DataFrame
    resolved: bool = False  # members, stores and categories found already


class OrderBatches:
    """Applies order-line batches to the store and counts what happened across all of them."""

    def __init__(self, *, store: BulkStore, create_members: bool) -> None:
        settings = get_settings()
        self.store, self.create_members = store, create_members
        self.region, self.timezone = settings.default_region, settings.default_timezone
        self.result = ImportResult()
        self._know_members(service.member_keys(store=store))
        self.stores = store_refs(store=store)
        self.products = service.product_categories(store=store)
        self.first_new_order = service.last_order_id(store=store) + 1
        self.waiting = pl.DataFrame()
        # The orders this import created, batch by batch, and amounts added to them later:
        # their points are given from these, without reading the orders back.
        self.created: list[pl.DataFrame] = []
        self.added: list[pl.DataFrame] = []

    def add(self, frame: pl.DataFrame, *, last: bool, trimmed: bool = False) -> pl.DataFrame:
        """Cleans and stores one batch; returns its problems. The last order waits for more."""
        if frame.height == 0 and self.waiting.height == 0:
            return NO_PROBLEMS
        return self.add_cleaned(self.clean(frame, trimmed=trimmed), last=last)

    def accrue_points(self) -> int:
        """Gives the orders this import created their points (each order once), from the
        import's own frames, `ACCRUAL_ORDERS` orders at a time. Returns the points given."""
        added = None
        if self.added:
            added = (
                pl.concat(self.added)
                .group_by("order_id")
                .agg(pl.col("amount_cents").sum().alias("_added"))
            )
        given, chunk, held = 0, [], 0
        created, self.created, self.added = self.created, [], []
        for index, orders in enumerate(created):
            chunk.append(orders)
            held += orders.height
            if held < ACCRUAL_ORDERS and index < len(created) - 1:
                continue
            orders, chunk, held = pl.concat(chunk), [], 0
            if added is not None:
                orders = orders.join(added, on="order_id", how="left").with_columns(
                    (pl.col("amount_cents") + pl.col("_added").fill_null(0)).alias("amount_cents")
                )
            given += loyalty.accrue_imported(
                db_session=self.store.session, orders=orders, now=clock.now()
            )["points"]
        return given

    def clean(self, frame: pl.DataFrame, *, trimmed: bool = False) -> CleanedLines:
        """Cleans one batch without touching the store (so it may run ahead in a thread)."""
        good, problems = clean_orders(
            frame, region=self.region, timezone=self.timezone, trimmed=trimmed
        )
        if self.create_members:
            return CleanedLines(rows=frame.height, good=good, problems=problems)
        # Without members to create, the lookups are in memory: done here, off the writer.
        good, unresolved = self._resolve(good)
        problems = pl.concat([problems, unresolved])
        return CleanedLines(rows=frame.height, good=good, problems=problems, resolved=True)

    def add_cleaned(self, cleaned: CleanedLines, *, last: bool) -> pl.DataFrame:
        """Stores one cleaned batch; returns its problems. The last order waits for more."""
        good, problems = cleaned.good, cleaned.problems
        self.result.rows += cleaned.rows
        if self.waiting.height:
            good = pl.concat([self.waiting, good])
        if not last and good.height:
            final_order = good.sort("line")["external_id"][-1]
            self.waiting = good.filter(pl.col("external_id") == final_order)
            good = good.filter(pl.col("external_id") != final_order)
        if not cleaned.resolved:
            good, unresolved = self._resolve(good)
            problems = pl.concat([problems, unresolved])
        good, inconsistent = _consistent_orders(good)
        with import_cache(self.store):
            self._store(good)
        problems = pl.concat([problems, inconsistent])
        self.result.rejected += problems.height
        return problems.sort("line")

    def _resolve(self, good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Finds each line's member, store and category; rejects what cannot be found."""
        good = self._with_members(good)
        unknown = pl.col("member_id").is_null()
        if self.create_members and good.filter(unknown).height:
            self._create_members(good.filter(unknown))
            good = self._with_members(good.drop("member_id"))
        refs, products = self.stores, self.products
        good = good.with_columns(
            pl.col("store_ref")
            .replace_strict(refs["ref"], refs["store_id"], default=None)
            .cast(pl.Int64)
            .alias("store_id"),
            pl.coalesce(
                "category",
                pl.col("sku").replace_strict(
                    products["sku"], products["category"], default=None, return_dtype=pl.String
                ),
            ).alias("category"),
        )
        unknown_store = pl.col("store_ref").is_not_null() & pl.col("store_id").is_null()
        who = pl.coalesce("code", "phone")
        problem = reasons(
            pl.when(unknown).then(
                pl.format(
                    "member '{}' is not known; import members first or use --create-members", who
                )
            ),
            pl.when(unknown_store).then(
                pl.format("store '{}' is not known; import stores first", "store_ref")
            ),
        )
        good = good.with_columns(problem.alias("reason"))
        rejected = good.filter(pl.col("reason").is_not_null()).select(
            "line", "reason", pl.lit(True).alias("rejected")
        )
        return good.filter(pl.col("reason").is_null()).drop("reason"), rejected

    def _know_members(self, members: pl.DataFrame) -> None:
        """Keeps the members' keys (`member_id`, `code`, `phone`) and their two lookups."""
        self.members = members
        self.by_code = members.filter(pl.col("code").is_not_null()).select(
            "code", pl.col("member_id").alias("_by_code")
        )
        self.by_phone = members.filter(pl.col("phone").is_not_null()).select(
            "phone", pl.col("member_id").alias("_by_phone")
        )

    def _with_members(self, good: pl.DataFrame) -> pl.DataFrame:
        """Adds `member_id`: the member of the line's code, else the member of its phone."""
        return (
            good.join(self.by_code, on="code", how="left")
            .join(self.by_phone, on="phone", how="left")
            .with_columns(pl.coalesce("_by_code", "_by_phone").cast(pl.Int64).alias("member_id"))
            .drop("_by_code", "_by_phone")
        )

    def _create_members(self, lines: pl.DataFrame) -> None:
        newest = int(self.members.select(pl.col("member_id").max().fill_null(0)).item())
        people = lines.sort("line").unique(["code", "phone"], keep="first", maintain_order=True)
        # One member per code; a line without a code makes one per phone.
        people = (
            pl.concat(
                [
                    people.filter(pl.col("code").is_not_null()).unique("code", keep="first"),
                    people.filter(pl.col("code").is_null()).unique("phone", keep="first"),
                ]
            )
            .unique("phone", keep="first")
            .with_columns(
                pl.when(pl.col("phone").is_null())
                .then(pl.lit("missing"))
                .otherwise(pl.lit("ok"))
                .alias("phone_status")
            )
        )
        service.create_members(store=self.store, members=people, now=clock.now())
        self._know_members(
            pl.concat([self.members, service.member_keys(store=self.store, after_id=newest)])
        )

    def _store(self, good: pl.DataFrame) -> None:
        """Writes new orders and their lines; lines of orders imported before are skipped."""
        if good.height == 0:
            return
        orders = (
            good.sort("line")
            .group_by("external_id", maintain_order=True)
            .agg(
                pl.col("member_id").first(),
                pl.col("store_id").first(),
                pl.col("ordered_at").first(),
                pl.col("amount_cents").sum(),
                pl.col("discount_cents").sum(),
            )
            # New orders take their ids in member order: the member index and the members'
            # key lookups then go in sequence, and so do the lines' and the points' inserts.
            .sort("member_id", "ordered_at", "external_id")
        )
        before = service.last_order_id(store=self.store)
        created = pl.lit(clock.now(), dtype=UTC).alias("created_at")
        ids = service.insert_orders(store=self.store, orders=orders.with_columns(created))
        self.created.append(
            orders.join(ids, on="external_id")
            .filter(pl.col("order_id") > before)
            .select("order_id", "member_id", "ordered_at", "amount_cents")
        )
        good = (
            good.join(ids, on="external_id", how="left")
            .filter(pl.col("order_id") >= self.first_new_order)
            .sort("line")
            .with_columns(
                pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("order_id").alias("line_no")
            )
        )
        # Lines of an order that an earlier batch of this import created: append to it.
        earlier = good.filter(pl.col("order_id") <= before)
        if earlier.height:
            counts = service.line_counts(store=self.store, order_ids=earlier["order_id"].unique())
            good = good.join(counts, on="order_id", how="left").with_columns(
                (pl.col("line_no") + pl.col("lines_before").fill_null(0)).alias("line_no")
            )
            totals = earlier.group_by("order_id").agg(
                pl.col("amount_cents").sum(), pl.col("discount_cents").sum()
            )
            service.add_to_orders(store=self.store, totals=totals)
            self.added.append(totals.select("order_id", "amount_cents"))
        items = good.select(ITEM_COLUMNS).sort("order_id", "line_no")
        service.insert_items(store=self.store, items=items)
        self.result.inserted += good.height


UTC = pl.Datetime("us", "UTC")


def _consistent_orders(good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rejects lines whose member or time differ from their order's first line."""
    reference = (
        good.sort("line")
        .group_by("external_id")
        .agg(
            pl.col("member_id").first().alias("_member"),
            pl.col("ordered_at").first().alias("_at"),
            pl.col("line").first().alias("_first"),
        )
    )
    checked = good.join(reference, on="external_id", how="left")
    odd = (pl.col("member_id") != pl.col("_member")) | (pl.col("ordered_at") != pl.col("_at"))
    rejected = checked.filter(odd).select(
        "line",
        pl.format(
            "order '{}' has another member or time on its first line ({})", "external_id", "_first"
        ).alias("reason"),
        pl.lit(True).alias("rejected"),
    )
    return checked.filter(~odd).drop("_member", "_at", "_first"), rejected


def import_orders(
    *,
    engine: Engine,
    path: Path,
    create_members: bool = False,
    mapping: Path | None = None,
    rejects_path: Path | None = None,
    progress: bool = False,
) -> ImportResult:
    """Imports an order-line CSV in batches; unknown members are rejected unless created."""
    settings = get_settings()
    path = Path(path)
    with CsvSource(path, aliases=ORDER_ALIASES, mapping_path=mapping) as csv:
        csv.require(all_of=("order_id", "ordered_at", "amount"), any_of=("phone", "member_code"))
        rejects = RejectsWriter(RejectsWriter.beside(path, rejects_path), csv.header)
        with bulk_store(engine) as store, file_import_cache(store):
            batches = OrderBatches(store=store, create_members=create_members)
            try:
                # A batch is applied once the next one is read, so the last one is known;
                # rejects of held-back lines are found in the batch before.
                def cleaned() -> Iterator[tuple[pl.DataFrame, CleanedLines]]:
                    for raw in csv.batches(settings.import_batch_rows, progress=progress):
                        yield raw, batches.clean(csv.canonical(raw), trimmed=True)

                previous, pending = pl.DataFrame(), None
                for batch in read_ahead(cleaned()):
                    if pending is not None:
                        _apply(batches, rejects, store, previous, pending, last=False)
                        previous = pending[0]
                    pending = batch
                if pending is not None:
                    _apply(batches, rejects, store, previous, pending, last=True)
                # Points once the whole file is in: an order's lines may span batches.
                batches.accrue_points()
                # Receipts for the new orders; no more cart reminders for those who ordered.
                orders_arrived(
                    store.session, first_order_id=batches.first_new_order, now=clock.now()
                )
                # The anti-fraud reminder after a large purchase, once per order.
                notify_large_orders(
                    db_session=store.session,
                    first_order_id=batches.first_new_order,
                    settings=settings,
                    now=clock.now(),
                )
                # Credit the new orders to the messages that earned them.
                attribute_orders(db_session=store.session)
                store.commit()
            finally:
                batches.result.rejects_file = rejects.close()
    return batches.result


def _apply(
    batches: OrderBatches,
    rejects: RejectsWriter,
    store: BulkStore,
    previous: pl.DataFrame,
    batch: tuple[pl.DataFrame, CleanedLines],
    *,
    last: bool,
) -> None:
    raw, cleaned = batch
    problems = batches.add_cleaned(cleaned, last=last)
    store.commit()
    both = pl.concat([previous, raw]) if previous.height else raw
    rejects.write(both, problems.select("line", "reason"))
