"""Building a table's secondary indexes once after a large import instead of row by row (SQLite).

SQLite inserts into an index in the order rows arrive. Rows whose key is in another order
than their id (orders by member, ledger lots by member) land all over the index, and each
costs several times an append at its end; building the index after the load sorts every key
once. So when an import adds a large share of a table's rows, the table's non-unique indexes
are dropped in the import's first transaction and built again in its last one. Unique ones
stay: the import relies on them to find what the store already has.

A crash in between leaves the table without those indexes, never without rows:
`restore_indexes`, run as every import begins and by `tidings db upgrade` (so also as
`tidings serve` starts), builds whatever index the models declare and the store lacks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import polars as pl
from sqlalchemy import Index

from tidings.bulk import BulkStore
from tidings.db import Base

DEFERRING_TABLES = ("members", "orders", "points_lots")  # whose indexes an import may defer
DEFER_SHARE = 0.5  # an import adding at least this share of a table's rows builds after
DEFER_MIN_ROWS = 100_000  # rows below which an import keeps the indexes (building costs more)


def secondary_indexes(table: str) -> list[Index]:
    """The non-unique indexes the models declare on `table`."""
    import tidings.models  # noqa: F401  (every table in Base.metadata)

    declared = Base.metadata.tables[table].indexes
    return sorted((index for index in declared if not index.unique), key=lambda i: str(i.name))


def _present(store: BulkStore, table: str) -> set[str]:
    names = store.frame(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
        (table,),
        schema={"name": pl.String},
    )
    return set(names["name"].to_list())


def restore_indexes(store: BulkStore, tables: Sequence[str]) -> list[str]:
    """Builds the secondary indexes of `tables` that the store lacks, inside the current
    transaction (the caller commits). Returns their names."""
    if store.dialect != "sqlite":
        return []
    built = []
    connection = store.session.connection()
    for table in tables:
        present = _present(store, table)
        missing = [i for i in secondary_indexes(table) if str(i.name) not in present]
        if not missing:
            continue
        with _sorting(store):
            for index in missing:
                index.create(connection)
                built.append(str(index.name))
    return built


SORT_CACHE_KIB = 8 * 1024  # page cache while building an index: what SQLite sorts in memory
SORT_THREADS = min(os.cpu_count() or 1, 4)  # threads SQLite may sort with


@contextmanager
def _sorting(store: BulkStore) -> Iterator[None]:
    """Has SQLite sort an index's keys in small runs on several threads, then merge them.

    SQLite sorts in memory up to its page cache: an import's half-gigabyte cache made it one
    sort of millions of keys on one core, about 5 s for 4 million orders by member and time;
    runs of 8 MiB sorted on two threads took 2 s. The settings are the connection's: what it
    had comes back after (a narrowed cache reads its pages again as they are needed).
    """
    raw = store.session.connection().connection.driver_connection
    assert raw is not None
    cache = int(raw.execute("PRAGMA cache_size").fetchone()[0])
    threads = int(raw.execute("PRAGMA threads").fetchone()[0])
    raw.execute(f"PRAGMA cache_size = -{SORT_CACHE_KIB}")
    raw.execute(f"PRAGMA threads = {SORT_THREADS}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size = {cache}")
        raw.execute(f"PRAGMA threads = {threads}")


def rows_now(store: BulkStore, table: str) -> int:
    """About how many rows `table` holds: its highest id, found at the end of its b-tree."""
    top = store.frame(f"SELECT MAX(id) FROM {table}", schema={"top": pl.Int64})["top"][0]
    return int(top or 0)


def worth_deferring(store: BulkStore, table: str, adding: int) -> bool:
    """Whether adding `adding` rows to `table` costs less with its indexes built after."""
    if store.dialect != "sqlite" or adding < DEFER_MIN_ROWS:
        return False
    return adding >= DEFER_SHARE * rows_now(store, table)


@contextmanager
def indexes_after_load(store: BulkStore, tables: Sequence[str]) -> Iterator[None]:
    """Drops the secondary indexes of `tables` in the current transaction and builds them
    again when the block ends, in the transaction then open (the caller commits it). When the
    block raises, its transaction is rolled back and the indexes are built in one of their
    own, so that a failed import leaves every index in place."""
    if store.dialect != "sqlite" or not tables:
        yield
        return
    for table in tables:
        present = _present(store, table)
        for index in secondary_indexes(table):
            if str(index.name) in present:
                store.execute(f"DROP INDEX {index.name}")
    try:
        yield
    except BaseException:
        store.session.rollback()
        restore_indexes(store, tables)
        store.commit()
        raise
    restore_indexes(store, tables)
