"""How an import runs over its file: the CSV opened with its rejects file beside it, and the
catalogue import (stores, products) that cleans, upserts and commits each batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from tidings.bulk import BulkStore, bulk_store
from tidings.config import get_settings
from tidings.imports.errors import ImportResult
from tidings.imports.reader import CsvSource
from tidings.imports.rejects import RejectsWriter

# Cleans a batch: (one row per key, the last one winning; problems with their line).
Cleaner = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]
# Writes cleaned rows by their key: (inserted, updated).
Upserter = Callable[[BulkStore, pl.DataFrame], tuple[int, int]]


@contextmanager
def open_import(
    path: Path,
    *,
    aliases: Mapping[str, tuple[str, ...]],
    required: tuple[str, ...],
    mapping: Path | None,
    rejects_path: Path | None,
    result: ImportResult,
) -> Iterator[tuple[CsvSource, RejectsWriter]]:
    """Opens the CSV, refuses it when a `required` column is missing, and opens its rejects
    file; however the import ends, the rejects file is closed and named in `result`."""
    with CsvSource(path, aliases=aliases, mapping_path=mapping) as csv:
        csv.require(all_of=required)
        rejects = RejectsWriter(RejectsWriter.beside(path, rejects_path), csv.header)
        try:
            yield csv, rejects
        finally:
            result.rejects_file = rejects.close()


def import_catalogue(
    *,
    engine: Engine,
    path: Path,
    aliases: Mapping[str, tuple[str, ...]],
    required: tuple[str, ...],
    clean: Cleaner,
    upsert: Upserter,
    mapping: Path | None,
    rejects_path: Path | None,
    progress: bool,
) -> ImportResult:
    """Imports a catalogue CSV batch by batch: each is cleaned, upserted by its key and
    committed, and its problems are written to the rejects file."""
    settings = get_settings()
    path = Path(path)
    result = ImportResult()
    with (
        open_import(
            path,
            aliases=aliases,
            required=required,
            mapping=mapping,
            rejects_path=rejects_path,
            result=result,
        ) as (csv, rejects),
        bulk_store(engine) as store,
    ):
        for raw in csv.batches(settings.import_batch_rows, progress=progress):
            good, problems = clean(csv.canonical(raw))
            inserted, updated = upsert(store, good)
            store.commit()
            rejects.write(raw, problems)
            result.rows += raw.height
            result.inserted += inserted
            result.updated += updated
            result.rejected += problems.height
            result.merged_duplicates += raw.height - problems.height - good.height
    return result
