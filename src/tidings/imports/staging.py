"""New rows made ready for SQLite in a child process while the writer works on other batches.

Binding a member's dozen values through Python's sqlite3 cost a big import's writer about
2.5 µs a row: twice SQLite's own work storing it, and all of it on the writer's core. So each
batch's rows, as soon as they are cleaned, go to a child process that writes them through
ADBC (from Arrow, without a Python object per value) into a throwaway SQLite file beside
the store, a table each. The writer attaches that file inside its transaction and copies
the rows it keeps with INSERT ... SELECT, then detaches and removes the file once that
transaction has ended. The writer waits for the child where it has not finished (only the
first batch, in practice: while the child starts); it binds the rows itself only where the
child failed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
from sqlalchemy import Connection

from tidings.bulk import BulkStore, sqlite_values
from tidings.childwrites import prepare_staging, write_staged
from tidings.scans import CHILD_READERS, SqliteChildren

log = logging.getLogger(__name__)
MAX_ATTACHED = 8  # staged files attached at once; SQLite allows ten databases by default
ATTACHES = itertools.count(1)  # numbers the names staged files are attached under


@dataclass
class StagedRows:
    """One batch's tables, being written to a file of their own by a child process."""

    path: str
    rows: dict[str, int]  # rows of each table
    columns: dict[str, list[str]]  # columns of each table
    written: Future[dict[str, int]]
    schema: str | None = None  # the name the file is attached under, once it is

    def table(self, name: str) -> str:
        """A staged table's name on the writer's connection (once attached)."""
        assert self.schema is not None, "a staged file is attached before its tables are read"
        return f"{self.schema}.{name}"


class RowStager:
    """Stages batches of rows in files beside a SQLite store and attaches them to a
    per-frame store's connection (`tidings.bulk.bulk_store`) for its INSERT ... SELECT.

    Use it as a context manager around the store's work, committed before the block ends:
    on leaving, every staged file is detached and the files go (after an error, what the
    store left uncommitted is rolled back first).
    """

    def __init__(self, store: BulkStore, database: str) -> None:
        self.store = store
        self.children = SqliteChildren(database)
        for _ in range(CHILD_READERS):  # both started while the first batch is read
            self.children.submit(prepare_staging)
        self.attached: list[StagedRows] = []
        self.staged = 0

    def stage(self, tables: Mapping[str, pl.DataFrame]) -> StagedRows:
        """Hands each frame to a child that writes it, as a table of that name, to a file
        of their own (any one thread may call this; times and dates become the text SQLite
        keeps)."""
        self.staged += 1
        sources = {}
        for name, frame in tables.items():
            sources[name] = self.children.file(f"staged-{self.staged}-{name}")
            sqlite_values(frame).write_ipc_stream(sources[name])
        path = str(Path(self.children.file(f"staged-{self.staged}")).with_suffix(".db"))
        return StagedRows(
            path,
            rows={name: frame.height for name, frame in tables.items()},
            columns={name: frame.columns for name, frame in tables.items()},
            written=self.children.submit(write_staged, path, sources),
        )

    def attach(self, staged: StagedRows) -> bool:
        """Attaches a staged file to the store's connection once its child has written it
        (its tables are then read as `staged.table(name)`); False when the child failed, or
        too many files are still attached (each is detached only between transactions): the
        caller then binds the rows itself."""
        self.release()
        if len(self.attached) >= MAX_ATTACHED:
            return False
        error = staged.written.exception()  # waits for the child
        if error is not None or staged.written.result() != staged.rows:
            log.warning("staged rows left unused (%s): bound instead", error or "rows missing")
            return False
        staged.schema = f"staged_{next(ATTACHES)}"
        self.store.execute(f"ATTACH DATABASE ? AS {staged.schema}", (staged.path,))
        self.attached.append(staged)
        return True

    def release(self) -> None:
        """Detaches and removes the staged files, unless a transaction is open."""
        raw = _raw_connection(self.store)
        if raw.in_transaction:
            return
        for staged in self.attached:
            raw.execute(f"DETACH DATABASE {staged.schema}")
            Path(staged.path).unlink(missing_ok=True)
        self.attached.clear()

    def __enter__(self) -> RowStager:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if error is not None:
                self.store.session.rollback()  # as the store would: nothing of it is kept
            self.release()
            if self.attached:
                raise RuntimeError("staged files are detached between transactions: commit first")
        finally:
            self.children.close()


def copy_staged(
    store: BulkStore, staged: StagedRows, table: str, *, shift: Mapping[str, int]
) -> int:
    """Appends every row of the staged table named `table` to the store's table of that
    name, in the staged order, adding `shift[name]` to each column so named (ids staged as
    positions); returns rows written."""
    columns = staged.columns[table]
    values = ", ".join(
        f"{name} + {int(shift[name])}" if name in shift else name for name in columns
    )
    return store.execute(
        f"INSERT INTO {table} ({', '.join(columns)})"
        f" SELECT {values} FROM {staged.table(table)} ORDER BY rowid"
    )


def _raw_connection(store: BulkStore) -> Any:
    """The sqlite3 connection of a per-frame store, reached without beginning a transaction."""
    bind = store.session.get_bind()
    assert isinstance(bind, Connection), "rows are staged for a per-frame store (bulk_store)"
    raw = bind.connection.driver_connection
    assert raw is not None
    return raw
