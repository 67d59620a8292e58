"""Importing order lines, shared by the CSV import and the batch API (cleaning is in `cleaning`).

One row is one order line. Rows with the same `order_id` are lines of one order; the order's
member, time and store come from its first line, and a later line that says otherwise is
rejected. The order's amount is the sum of its lines. Orders are immutable by `order_id`:
re-importing a file skips the orders the store already has, so nothing is inserted twice and
nothing changes. Lines of one order that arrive in different batches of the same import are
all kept (the order is held back until its last line, or appended to when it is scattered).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.bulk import BulkStore, bulk_store, wide_page_cache
from tidings.config import get_settings
from tidings.imports import CsvSource, ImportResult, RejectsWriter, reasons
from tidings.imports.ahead import read_ahead
from tidings.imports.indexes import (
    indexes_after_load,
    restore_indexes,
    rows_now,
    worth_deferring,
)
from tidings.imports.loading import IMPORT_CACHE_KIB, file_import_cache
from tidings.imports.lookup import KeyIndex
from tidings.loyalty import service as loyalty
from tidings.members.merging import NO_PROBLEMS
from tidings.members.service import store_refs
from tidings.orders import reactions, service
from tidings.orders.cleaning import ORDER_ALIASES, ORDER_FIELDS, clean_orders
from tidings.orders.models import OwedReactions
from tidings.orders.products_import import import_products

__all__ = ["ORDER_FIELDS", "OrderBatches", "clean_orders", "import_orders", "import_products"]

ITEM_COLUMNS = ("order_id", "line_no", "sku", "category", "quantity", "amount_cents", "discounted")
ACCRUAL_ORDERS = 500_000  # orders given their points at a time
# An import expecting fewer lines than the members over this looks up each batch's members
# through the code and phone indexes instead of reading every member's keys once.
LINES_PER_MEMBER_READ = 4
# Tables an order import writes to whose indexes it may build after the load.
IMPORTED_TABLES = ("orders", "points_lots")


@dataclass(frozen=True)
class CleanedLines:
    """A batch of order lines after cleaning: how many rows it had, good lines and problems."""

    rows: int
    good: pl.DataFrame
    problems: pl.DataFrame
    resolved: bool = False  # members, stores and categories found already
    # Once checked (`OrderBatches.checked`): the good lines' orders, in the order they take
    # their ids, and the lines numbered within each order, in that order too.
    orders: pl.DataFrame | None = None


class OrderBatches:
    """Applies order-line batches to the store and counts what happened across all of them."""

    def __init__(
        self, *, store: BulkStore, create_members: bool, expected_lines: int | None = None
    ) -> None:
        """`expected_lines`: about how many lines will come (None: many)."""
        settings = get_settings()
        self.store, self.create_members = store, create_members
        self.region, self.timezone = settings.default_region, settings.default_timezone
        self.result = ImportResult()
        # Few lines beside many members: each batch looks up its own members' keys.
        self.members_by_batch = (
            expected_lines is not None
            and expected_lines * LINES_PER_MEMBER_READ < rows_now(store, "members")
        )
        if self.members_by_batch:
            self._know_members(pl.DataFrame(schema=service.MEMBER_KEYS))
        else:
            self._know_members(service.member_keys(store=store))
            # Read in this transaction: the lines' members need no looking up again.
            store.note_found("members", self.members["member_id"])
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
        return self.add_cleaned(self.complete(self.clean(frame, trimmed=trimmed), last=last))

    def accrue_points(self) -> int:
        """Gives the orders this import created their points (each order once), from the
        import's own frames, `ACCRUAL_ORDERS` orders at a time. Returns the points given.

        When they are many beside the ledger, its member index is built after their lots: the
        ledgers an accrual opens first are found through that index, so all are opened before.
        """
        added = None
        if self.added:
            added = (
                pl.concat(self.added)
                .group_by("order_id")
                .agg(pl.col("amount_cents").sum().alias("_added"))
            )
        created, self.created, self.added = self.created, [], []
        members = pl.concat(
            [pl.Series("member_id", [], dtype=pl.Int64)]
            + [orders["member_id"] for orders in created]
        )
        deferred = worth_deferring(self.store, "points_lots", members.len())
        if deferred:
            loyalty.open_ledgers(db_session=self.store.session, now=clock.now(), member_ids=members)

        def chunks() -> Iterator[pl.DataFrame]:
            chunk: list[pl.DataFrame] = []
            held = 0
            for index, orders in enumerate(created):
                chunk.append(orders)
                held += orders.height
                if held < ACCRUAL_ORDERS and index < len(created) - 1:
                    continue
                orders, chunk, held = pl.concat(chunk), [], 0
                if added is not None:
                    orders = orders.join(added, on="order_id", how="left").with_columns(
                        (pl.col("amount_cents") + pl.col("_added").fill_null(0)).alias(
                            "amount_cents"
                        )
                    )
                yield orders

        with indexes_after_load(self.store, ["points_lots"] if deferred else []):
            return loyalty.accrue_imported(
                db_session=self.store.session,
                chunks=chunks(),
                member_ids=members,
                now=clock.now(),
                ledgers_open=deferred,
            )["points"]

    def clean(self, frame: pl.DataFrame, *, trimmed: bool = False) -> CleanedLines:
        """Cleans one batch without touching the store (so it may run ahead in a thread)."""
        good, problems = clean_orders(
            frame, region=self.region, timezone=self.timezone, trimmed=trimmed
        )
        if self.create_members or self.members_by_batch:
            # Creating members, or looking them up in the store, is the writer's to do: the
            # store's session is not this thread's to use while the writer uses it.
            return CleanedLines(rows=frame.height, good=good, problems=problems)
        # Members known in memory are found here, off the writer.
        good, unresolved = self._resolve(good)
        problems = pl.concat([problems, unresolved])
        return CleanedLines(rows=frame.height, good=good, problems=problems, resolved=True)

    def complete(self, cleaned: CleanedLines, *, last: bool) -> CleanedLines:
        """The batch's lines of whole orders: its final order waits for the next batch's
        lines (unless it is the last batch), and the lines held back before join it. Batches
        come here in order, each once. Lines found their members already are checked too
        (`checked`), so that all of this may run ahead in the reading thread."""
        good = pl.concat([self.waiting, cleaned.good]) if self.waiting.height else cleaned.good
        self.waiting = pl.DataFrame()
        if not last and good.height:
            final_order = good["external_id"][int(good["line"].arg_max() or 0)]
            held = pl.col("external_id") == final_order
            good, self.waiting = good.filter(~held), good.filter(held)
        whole = replace(cleaned, good=good)
        return self.checked(whole) if whole.resolved else whole

    def checked(self, cleaned: CleanedLines) -> CleanedLines:
        """Rejects lines at odds with their order's first line, and groups the rest into
        orders (`CleanedLines.orders`)."""
        good, inconsistent = _consistent_orders(cleaned.good)
        orders = good.group_by("external_id", maintain_order=True).agg(
            pl.col("member_id").first(),
            pl.col("store_id").first(),
            pl.col("ordered_at").first(),
            pl.col("amount_cents").sum(),
            pl.col("discount_cents").sum(),
        )
        problems = pl.concat([cleaned.problems, inconsistent])
        return replace(cleaned, good=good, problems=problems, orders=orders)

    def add_cleaned(self, cleaned: CleanedLines) -> pl.DataFrame:
        """Stores one batch of whole orders (`complete`); returns its problems."""
        self.result.rows += cleaned.rows
        if not cleaned.resolved:
            good, unresolved = self._resolve(cleaned.good)
            problems = pl.concat([cleaned.problems, unresolved])
            cleaned = replace(cleaned, good=good, problems=problems, resolved=True)
        if cleaned.orders is None:
            cleaned = self.checked(cleaned)
        assert cleaned.orders is not None
        with wide_page_cache(self.store.session, IMPORT_CACHE_KIB):
            self._store(cleaned.good, cleaned.orders)
        self.result.rejected += cleaned.problems.height
        return cleaned.problems.sort("line")

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
        self.by_code = KeyIndex(members["code"], members["member_id"])
        self.by_phone = KeyIndex(members["phone"], members["member_id"])

    def _with_members(self, good: pl.DataFrame) -> pl.DataFrame:
        """Adds `member_id`: the member of the line's code, else the member of its phone."""
        if self.members_by_batch:
            self._know_members(
                service.member_keys_of(store=self.store, codes=good["code"], phones=good["phone"])
            )
        member = self.by_code.find(good["code"]).cast(pl.Int64)
        by_phone = (member.is_null() & good["phone"].is_not_null()).arg_true()
        if by_phone.len():
            phones = good["phone"].gather(by_phone)
            member = member.scatter(by_phone, self.by_phone.find(phones).cast(pl.Int64))
        return good.with_columns(member.alias("member_id"))

    def _create_members(self, lines: pl.DataFrame) -> None:
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
        newest = int(self.members.select(pl.col("member_id").max().fill_null(0)).item())
        service.create_members(store=self.store, members=people, now=clock.now())
        if not self.members_by_batch:  # else the next look-up finds them
            self._know_members(
                pl.concat([self.members, service.member_keys(store=self.store, after_id=newest)])
            )

    def _store(self, good: pl.DataFrame, orders: pl.DataFrame) -> None:
        """Writes new orders and their lines (as `checked` left them); lines of orders
        imported before are skipped."""
        if good.height == 0:
            return
        # New orders take their ids in the file's order, in which order ids mostly grow: the
        # order-id key, the lines and the points ledger then all go in at their ends. (The
        # member keys go in all over their indexes; a large import builds those after.)
        before = service.last_order_id(store=self.store)
        created = pl.lit(clock.now(), dtype=UTC).alias("created_at")
        ids = service.insert_orders(store=self.store, orders=orders.with_columns(created))
        self.created.append(
            orders.join(ids, on="external_id")
            .filter(pl.col("order_id") > before)
            .select("order_id", "member_id", "ordered_at", "amount_cents")
        )
        # The lines of new orders stay as `checked` ordered them: by order id, then line.
        good = good.join(ids, on="external_id", how="left", maintain_order="left").filter(
            pl.col("order_id") >= self.first_new_order
        )
        # Lines of an order that an earlier batch of this import created: append to it.
        earlier = good.filter(pl.col("order_id") <= before)
        if earlier.height:
            counts = service.line_counts(store=self.store, order_ids=earlier["order_id"].unique())
            good = (
                good.join(counts, on="order_id", how="left")
                .with_columns(
                    (pl.col("line_no") + pl.col("lines_before").fill_null(0)).alias("line_no")
                )
                .sort("order_id", "line_no")
            )
            totals = earlier.group_by("order_id").agg(
                pl.col("amount_cents").sum(), pl.col("discount_cents").sum()
            )
            service.add_to_orders(store=self.store, totals=totals)
            self.added.append(totals.select("order_id", "amount_cents"))
        service.insert_items(store=self.store, items=good.select(ITEM_COLUMNS))
        self.result.inserted += good.height


UTC = pl.Datetime("us", "UTC")


def _consistent_orders(good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rejects lines whose member or time differ from their order's first line. The others
    come back in the order of their order's first line, then their own, numbered within
    their order (`line_no`)."""
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
    kept = (
        checked.filter(~odd)
        .sort("_first", "line")
        .with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("external_id").alias("line_no")
        )
    )
    return kept.drop("_member", "_at", "_first"), rejected


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
        try:
            batches, owed = _import_lines(engine, csv, rejects, create_members, progress=progress)
        finally:
            rejects_file = rejects.close()
    # What the new orders set off, in a transaction of its own (SQLite checks each row); if
    # it fails, the worker reacts to them later.
    with bulk_store(engine) as store:
        reactions.settle(store.session, owed, settings=settings)
        store.commit()
    batches.result.rejects_file = rejects_file
    return batches.result


def _import_lines(
    engine: Engine, csv: CsvSource, rejects: RejectsWriter, create_members: bool, *, progress: bool
) -> tuple[OrderBatches, OwedReactions | None]:
    """Stores the file's orders, their lines and points; returns the batches' account and
    the reactions the new orders are owed, recorded with their points.

    Each of these writes appends or checks its rows: SQLite checks references per batch.
    """
    with bulk_store(engine, references_per_frame=True) as store, file_import_cache(store):
        # Indexes that an import which crashed left unbuilt, before anything reads them.
        restore_indexes(store, IMPORTED_TABLES)
        store.commit()
        expected = csv.estimated_rows()
        batches = OrderBatches(store=store, create_members=create_members, expected_lines=expected)
        deferred = ["orders"] if worth_deferring(store, "orders", expected) else []
        with indexes_after_load(store, deferred):
            _apply_all(batches, csv, rejects, store, progress=progress)
        # Points once the whole file is in: an order's lines may span batches.
        batches.accrue_points()
        owed = reactions.owe(store.session, first_order_id=batches.first_new_order)
        store.commit()
    return batches, owed


def _apply_all(
    batches: OrderBatches,
    csv: CsvSource,
    rejects: RejectsWriter,
    store: BulkStore,
    *,
    progress: bool,
) -> None:
    """Cleans batches and makes them whole orders in a thread ahead of the one being stored.
    A batch is completed once the next one is read, so the last one is known; rejects of
    held-back lines are found in the batch after theirs."""

    def cleaned() -> Iterator[tuple[pl.DataFrame, CleanedLines]]:
        pending = None
        for raw in csv.batches(get_settings().import_batch_rows, progress=progress):
            batch = batches.clean(csv.canonical(raw), trimmed=True)
            if pending is not None:
                yield pending[0], batches.complete(pending[1], last=False)
            pending = raw, batch
        if pending is not None:
            yield pending[0], batches.complete(pending[1], last=True)

    previous = pl.DataFrame()
    for raw, batch in read_ahead(cleaned()):
        problems = batches.add_cleaned(batch)
        store.commit()
        both = pl.concat([previous, raw]) if previous.height else raw
        rejects.write(both, problems.select("line", "reason"))
        previous = raw
