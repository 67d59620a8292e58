"""Store-side helpers that keep bulk imports fast: key lookups in one statement, a larger cache.

An import batch looks up which of its keys the store has already (order ids, phones, member
codes). Staging tens of thousands of keys in a temporary table costs a write per key on
SQLite, so the keys travel as one parameter instead: a JSON array read by `json_each` on
SQLite, an array on PostgreSQL, and are joined to the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore
from tidings.references import json_array

IMPORT_CACHE_KIB = 512 * 1024  # SQLite page cache while importing, KiB (default is 2 MiB)
IMPORT_CHECKPOINT_PAGES = 100_000  # WAL pages before a checkpoint while importing (default 1,000)


def key_rows(store: BulkStore, sql_type: str = "TEXT") -> str:
    """A FROM item `k` with a column `value`: the keys passed as one parameter (`keys_param`).

    Joined to a table on an indexed column, each key is one index lookup.
    """
    if store.dialect == "sqlite":
        return "json_each(?) AS k"
    return f"unnest(CAST(? AS {sql_type}[])) AS k(value)"


def keys_param(store: BulkStore, keys: pl.Series) -> Any:
    """The distinct non-null keys as the single parameter `key_rows` expects."""
    distinct = keys.drop_nulls().unique()
    if store.dialect != "sqlite":
        return distinct.to_list()
    return json_array(distinct)


def reserve_ids(store: BulkStore, table: str, count: int) -> pl.Series:
    """Ids for `count` new rows of `table`, so a batch knows its rows' ids without reading back.

    PostgreSQL hands them out from the table's sequence. SQLite has one writer at a time, so
    the ids after the highest one are free until this transaction ends.
    """
    if store.dialect == "sqlite":
        top = store.frame(f"SELECT COALESCE(MAX(id), 0) FROM {table}", schema={"id": pl.Int64})
        first = int(top["id"][0]) + 1
        return pl.int_range(first, first + count, dtype=pl.Int64, eager=True).alias("id")
    reserved = store.frame(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, ?)",
        (count,),
        schema={"id": pl.Int64},
    )
    return reserved["id"]


@contextmanager
def file_import_cache(store: BulkStore) -> Iterator[None]:
    """For a whole file's import: each connection its transactions run on gets the import's
    page cache and checkpoint interval when the first one begins, and its old ones back at
    the end, when what the import wrote is checkpointed into the database file.

    Setting the cache back after every batch (as `tidings.bulk.wide_page_cache` would) empties
    it, so each batch read the indexes it writes to back from the file: at three million order lines
    that was about a third of the import's CPU time. A checkpoint after every batch's commit
    copied the index pages every batch touches into the file again each time.
    """
    if store.dialect != "sqlite":
        yield
        return
    widened: dict[int, tuple[Any, int, int]] = {}

    def widen(_session: Session, _transaction: Any, connection: Connection) -> None:
        raw = connection.connection.driver_connection
        if raw is not None and id(raw) not in widened:
            cache = int(raw.execute("PRAGMA cache_size").fetchone()[0])
            pages = int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            widened[id(raw)] = (raw, cache, pages)
            raw.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
            raw.execute(f"PRAGMA wal_autocheckpoint = {IMPORT_CHECKPOINT_PAGES}")

    event.listen(store.session, "after_begin", widen)
    try:
        widen(store.session, None, store.session.connection())
        yield
    finally:
        event.remove(store.session, "after_begin", widen)
        for raw, cache, pages in widened.values():
            raw.execute(f"PRAGMA cache_size = {cache}")
            raw.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    # The import has committed: what it wrote goes into the file now, not at the next commit.
    raw = next(iter(widened.values()))[0]
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
