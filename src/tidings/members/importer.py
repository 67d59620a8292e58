"""Importing members from CSV in batches: clean, merge duplicates, upsert, record consent.

The CSV import and the batch API both hand a frame of text columns (one per field, plus
`line`) to `MemberBatches.add`: `cleaning.clean_members`, then `merging.merge_duplicates`
(whose docstring states the rule that picks values), then the upserts of `service`.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.bulk import BulkStore, bulk_store, wide_page_cache
from tidings.config import get_settings
from tidings.imports import CsvSource, ImportResult, RejectsWriter
from tidings.imports.ahead import read_ahead
from tidings.imports.indexes import (
    indexes_after_load,
    restore_indexes,
    rows_now,
    worth_deferring,
)
from tidings.imports.loading import IMPORT_CACHE_KIB, file_import_cache
from tidings.imports.staging import RowStager, StagedRows, copy_staged
from tidings.loyalty import service as loyalty
from tidings.members import service
from tidings.members.cleaning import MEMBER_ALIASES, MEMBER_FIELDS, clean_members
from tidings.members.merging import (
    NO_PROBLEMS,
    STORED_FIELDS,
    final_values,
    merge_duplicates,
)
from tidings.members.service import MEMBER_COLUMNS, UTC_TIME
from tidings.members.stores_import import import_stores

__all__ = ["MemberBatches", "import_members", "import_stores", "members_from_records"]


def import_members(
    *,
    engine: Engine,
    path: Path,
    mapping: Path | None = None,
    rejects_path: Path | None = None,
    progress: bool = False,
    source: str | None = None,
) -> ImportResult:
    """Imports a member CSV: cleans, merges duplicates, upserts in batches, writes rejects."""
    settings = get_settings()
    path = Path(path)
    with CsvSource(path, aliases=MEMBER_ALIASES, mapping_path=mapping) as csv:
        csv.require(any_of=("phone", "member_code"))
        rejects = RejectsWriter(RejectsWriter.beside(path, rejects_path), csv.header)
        # Every write of the import appends or checks: SQLite checks references per batch.
        with bulk_store(engine, references_per_frame=True) as store, file_import_cache(store):
            # Indexes that an import which crashed left unbuilt, before anything reads them.
            restore_indexes(store, ["members"])
            store.commit()
            large = worth_deferring(store, "members", csv.estimated_rows())
            # A big file's new members are staged by a child (`tidings.imports.staging`).
            with RowStager(store, str(engine.url.database)) if large else nullcontext() as stager:
                batches = MemberBatches(
                    store=store, source=source or path.name, own_keys=True, stager=stager
                )
                try:
                    cleaned = (
                        (raw, batches.clean(csv.canonical(raw), trimmed=True))
                        for raw in csv.batches(settings.import_batch_rows, progress=progress)
                    )
                    with indexes_after_load(store, ["members"] if large else []):
                        for raw, batch in read_ahead(cleaned):
                            problems = batches.add_cleaned(batch)
                            store.commit()
                            rejects.write(raw, problems.select("line", "reason"))
                    store.commit()
                finally:
                    batches.result.rejects_file = rejects.close()
    return batches.result


@dataclass(frozen=True)
class CleanedMembers:
    """A batch after cleaning and merging: its row count, one row per member, rows merged."""

    rows: int
    merged: pl.DataFrame
    merged_rows: int
    problems: pl.DataFrame
    now: datetime  # the time its rows are written at
    # Its members' rows as if all were new (members, points_lots, consent_events), member
    # ids as positions in `grp` order, when a stager writes them.
    staged: StagedRows | None = None


WRITTEN_KEYS = {"member_id": pl.Int64, "phone": pl.String, "code": pl.String}
NO_MATCH = pl.DataFrame(schema={"grp": pl.Int64, **MEMBER_COLUMNS})  # as `_match` finds none


class MemberBatches:
    """Applies member batches to the store and counts what happened across all of them.

    `own_keys`: when the store has no member yet (SQLite), keep the keys of the members
    these batches write, and look a batch's members up in the store only where they share a
    key with one of them: a first import of a million members spent a tenth of its time
    asking the store's indexes for phones and codes it could not hold. Once another
    connection writes to the store, every batch asks the store again.
    """

    def __init__(
        self,
        *,
        store: BulkStore,
        source: str,
        own_keys: bool = False,
        stager: RowStager | None = None,
    ) -> None:
        settings = get_settings()
        self.store, self.source, self.stager = store, source, stager
        self.region, self.timezone = settings.default_region, settings.default_timezone
        self.result = ImportResult()
        self.touched = pl.Series("member_id", [], dtype=pl.Int64)
        self.stores = service.store_refs(store=store)
        self.written: pl.DataFrame | None = None  # the members these batches wrote, by key
        self.version = store.file_version()
        if own_keys and self.version is not None and rows_now(store, "members") == 0:
            self.written = pl.DataFrame(schema=WRITTEN_KEYS)

    def add(self, frame: pl.DataFrame, *, trimmed: bool = False) -> pl.DataFrame:
        """Cleans, merges and upserts one batch; returns its problems (`line`, `reason`, ...)."""
        if frame.height == 0:
            return NO_PROBLEMS
        return self.add_cleaned(self.clean(frame, trimmed=trimmed))

    def clean(self, frame: pl.DataFrame, *, trimmed: bool = False) -> CleanedMembers:
        """Cleans and merges one batch without touching the store (it may run in a thread);
        with a stager, its rows go to a child as well (`CleanedMembers.staged`)."""
        good, problems = clean_members(
            frame, region=self.region, timezone=self.timezone, trimmed=trimmed
        )
        merged, merged_rows = merge_duplicates(good)
        merged = merged.rename({"group": "grp"}).with_columns(
            pl.col("store_ref")
            .replace_strict(self.stores["ref"], self.stores["store_id"], default=None)
            .cast(pl.Int64)
            .alias("store_id")
        )
        now, staged = clock.now(), None
        if self.stager is not None:
            # What each member is if it turns out new (no stored member shares its keys), in
            # `grp` order: the order `_apply` gives new members their ids in.
            fresh = final_values(merged, NO_MATCH).sort("grp")
            placed = fresh.with_columns(
                pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("member_id")
            )
            staged = self.stager.stage(
                {
                    "members": fresh.select("grp", *STORED_FIELDS),
                    "points_lots": loyalty.new_ledger_lots(_balances(placed), now=now),
                    "consent_events": service.consent_rows(self._consent_events(placed, now=now)),
                }
            )
        return CleanedMembers(frame.height, merged, merged_rows, problems, now, staged)

    def _consent_events(self, members: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
        """The consent events of members (`member_id`) whose row says yes or no."""
        return members.filter(pl.col("consent").is_not_null()).select(
            "member_id",
            pl.when("consent").then(pl.lit("opt_in")).otherwise(pl.lit("opt_out")).alias("kind"),
            pl.lit(self.source).alias("source"),
            pl.coalesce("registered_at", pl.lit(now, dtype=UTC_TIME)).alias("occurred_at"),
            pl.lit(now, dtype=UTC_TIME).alias("created_at"),
        )

    def add_cleaned(self, cleaned: CleanedMembers) -> pl.DataFrame:
        """Upserts one cleaned batch; returns its problems (`line`, `reason`, `rejected`)."""
        merged, merged_rows, problems = cleaned.merged, cleaned.merged_rows, cleaned.problems
        if self.stager is not None:
            self.stager.release()  # the batch before's file, now that it is committed
        # A member of an unknown store is kept without one (warned), like a member without a
        # usable phone: importing the stores and this file again links the store.
        unknown_store = pl.col("store_ref").is_not_null() & pl.col("store_id").is_null()
        store_problems = _group_problems(
            merged.filter(unknown_store),
            pl.format("kept without store: store '{}' is not known; import stores first",
                      "store_ref"),
            rejected=False,
        )  # fmt: skip
        matched = self._match(merged)
        conflicted = matched.group_by("grp").agg(pl.col("id").n_unique() > 1).filter("id")["grp"]
        conflict_problems = _group_problems(
            merged.filter(pl.col("grp").is_in(conflicted.implode())),
            pl.format(
                "phone '{}' and member code '{}' belong to two different members; fix one",
                "phone",
                "code",
            ),
        )
        merged = merged.filter(~pl.col("grp").is_in(conflicted.implode()))
        self._apply(merged, matched.unique("grp"), merged_rows, cleaned)
        problems = pl.concat([problems, store_problems, conflict_problems])
        self.result.rows += cleaned.rows
        self.result.rejected += int(problems["rejected"].sum())
        self.result.warnings += int((~problems["rejected"]).sum())
        return problems.sort("line")

    def _match(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Stored members sharing a phone or a code with `keys`, as `service.match_members`
        finds them; with `own_keys`, only groups that share one with a member these batches
        wrote are looked up."""
        if self.written is not None and self.store.file_version() != self.version:
            self.written = None  # another connection wrote: the store may hold anything now
        if self.written is not None:
            shared = [keys.join(self.written, on=key, how="semi") for key in ("phone", "code")]
            keys = keys.filter(pl.col("grp").is_in(pl.concat(shared)["grp"].implode()))
        return service.match_members(store=self.store, keys=keys)

    def _insert_new(
        self, new: pl.DataFrame, staged: StagedRows | None, *, now: datetime
    ) -> tuple[pl.Series, bool]:
        """Inserts the new members (in `grp` order) and returns their ids, and whether they
        are every member the batch staged: copied from its staged file where there is one,
        else bound row by row."""
        if (
            self.stager is None
            or staged is None
            or not new.height
            or not self.stager.attach(staged)
        ):
            ids = service.insert_members(
                store=self.store,
                members=new.select(STORED_FIELDS).with_columns(
                    pl.col("points").fill_null(0),
                    pl.lit(now, dtype=UTC_TIME).alias("created_at"),
                    pl.lit(now, dtype=UTC_TIME).alias("updated_at"),
                ),
            )
            return ids, False
        self.store.check_references("members", new.select("store_id"))
        every = new.height == staged.rows["members"]
        ids = service.copy_staged_members(
            store=self.store,
            staged=staged.table("members"),
            columns=STORED_FIELDS,
            groups=new["grp"],
            every=every,
            now=now,
        )
        return ids, every

    def _remember(self, written: pl.DataFrame) -> None:
        """Notes the keys members now have after a batch wrote them (`member_id`, `phone`,
        `code`), while `own_keys` holds."""
        if self.written is not None:
            kept = self.written.filter(~pl.col("member_id").is_in(written["member_id"].implode()))
            self.written = pl.concat([kept, written.select(list(WRITTEN_KEYS))])
            self.version = self.store.file_version()

    def _apply(
        self, merged: pl.DataFrame, matched: pl.DataFrame, merged_rows: int, cleaned: CleanedMembers
    ) -> None:
        now = cleaned.now
        final = final_values(merged, matched)
        seen = pl.col("id").is_in(self.touched.implode())
        new = final.filter(pl.col("id").is_null()).sort("grp")
        changed = final.filter(pl.col("id").is_not_null() & pl.col("changed"))
        with wide_page_cache(self.store.session, IMPORT_CACHE_KIB):
            new_ids, all_staged = self._insert_new(new, cleaned.staged, now=now)
            service.update_members(
                store=self.store,
                members=changed.select("id", *STORED_FIELDS).with_columns(
                    pl.col("points").fill_null(0), pl.lit(now, dtype=UTC_TIME).alias("updated_at")
                ),
            )
            ids = pl.concat(
                [
                    matched.select("grp", pl.col("id").alias("member_id")),
                    new.select("grp", new_ids.alias("member_id")),
                ]
            )
            self._remember(
                pl.concat(
                    [
                        new.select(new_ids.alias("member_id"), "phone", "code"),
                        changed.select(pl.col("id").alias("member_id"), "phone", "code"),
                    ]
                )
            )
            if all_staged and cleaned.staged is not None:
                # Every member is new: their ledgers and consent are staged too, by position.
                shift = {"member_id": int(new_ids[0]) - 1}
                for table in ("points_lots", "consent_events"):
                    copy_staged(self.store, cleaned.staged, table, shift=shift)
            else:
                self._ledgers_and_consent(
                    merged, matched, new.with_columns(new_ids.alias("member_id")), ids, now=now
                )
            self.result.inserted += new.height
            self.result.updated += changed.filter(~seen).height
            self.result.merged_duplicates += merged_rows + final.filter(seen).height
            self.touched = pl.concat([self.touched, ids["member_id"]])

    def _ledgers_and_consent(
        self,
        merged: pl.DataFrame,
        matched: pl.DataFrame,
        new: pl.DataFrame,
        ids: pl.DataFrame,
        *,
        now: datetime,
    ) -> None:
        """Opens the ledgers of the `new` members (with their `member_id`), settles the
        matched ones' balances, and records each member's consent where it changes."""
        # The points ledger is the truth: a file's points open a ledger or yield to it.
        loyalty.open_new_ledgers(db_session=self.store.session, balances=_balances(new), now=now)
        if matched.height:
            loyalty.settle_imported_balances(
                db_session=self.store.session, member_ids=matched["id"], now=now
            )
        service.record_consent(
            store=self.store,
            new_members=new["member_id"],
            events=self._consent_events(merged.join(ids, on="grp"), now=now),
        )


def _balances(members: pl.DataFrame) -> pl.DataFrame:
    """Each member's (`member_id`) imported balance, as the ledger opens it."""
    return members.select("member_id", pl.col("points").fill_null(0))


def _group_problems(
    groups: pl.DataFrame, reason: pl.Expr, *, rejected: bool = True
) -> pl.DataFrame:
    """One problem per line of each group, with the group's reason (rejected, or a warning)."""
    return (
        groups.select(reason.alias("reason"), "lines")
        .explode("lines")
        .select(pl.col("lines").alias("line"), "reason", pl.lit(rejected).alias("rejected"))
    )


def members_from_records(records: list[dict[str, object]]) -> pl.DataFrame:
    """A frame of text columns from API objects; `line` is each object's index."""
    rows = [
        {name: None if value is None else str(value) for name, value in record.items()}
        for record in records
    ]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(MEMBER_FIELDS, pl.String))
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("line"))
