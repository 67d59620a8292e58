"""Reading several whole tables at once; big SQLite tables in child processes through ADBC.

A profile refresh reads millions of order lines. In this process SQLite is only opened
through Python's sqlite3 (see `tidings.db`), which costs a Python value per cell; children
read through ADBC, which writes Arrow directly, and hand the frames back as Arrow IPC files.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine

from tidings.db import cast_frame, read_frame

CHILD_READ_MIN_ROWS = 200_000  # rowids; a smaller table is read here (a child costs ~1 s)
CHILD_READERS = 2  # processes reading side by side; SQLite reads are CPU-bound


@dataclass(frozen=True)
class TableScan:
    """One table read whole, `SELECT {columns} FROM {table} WHERE {where}`, cast to `schema`.

    A scan of a big SQLite table is cut into `slices` rowid ranges read side by side.
    """

    table: str
    columns: str
    schema: dict[str, Any]
    where: str = "1 = 1"
    slices: int = 1

    def sql(self, first: int | None = None, end: int | None = None) -> str:
        """The query, limited to rowids from `first` up to (not including) `end` if given."""
        bounds = [f"rowid >= {int(first)}"] if first is not None else []
        bounds += [f"rowid < {int(end)}"] if end is not None else []
        where = " AND ".join([f"({self.where})", *bounds])
        return f"SELECT {self.columns} FROM {self.table} WHERE {where}"


def read_tables_in_children(
    engine: Engine, scans: Mapping[str, TableScan]
) -> dict[str, pl.DataFrame]:
    """Reads each scan into a frame; big SQLite tables are read in child processes.

    Python's sqlite3 costs about 1.5 s of CPU per million rows to turn rows into Python
    values; ADBC's SQLite driver writes Arrow directly, several times faster. But ADBC brings
    its own copy of SQLite, and two SQLite libraries in one process do not see each other's
    POSIX locks: closing the ADBC connection would checkpoint and delete the WAL under this
    process's pysqlite connections. Between processes SQLite's locks work as designed, so
    ADBC is only ever loaded in children started with `spawn` (never forked from a process
    holding SQLite connections). Each child reads one rowid slice on a connection of its
    own and hands it back as an Arrow IPC file beside the store, which is read here and
    removed. Each slice reads committed data; slices are not one snapshot, just as separate
    `read_frame` calls are not. Small tables, and every table on PostgreSQL, are read here.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return _read_scans_here(engine, scans)
    slices = {name: _rowid_slices(engine, scan) for name, scan in scans.items()}
    if all(part is None for parts in slices.values() for part in parts):
        return _read_scans_here(engine, scans)
    folder = tempfile.mkdtemp(prefix=".tidings-read-", dir=Path(database).resolve().parent)
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(CHILD_READERS, mp_context=context) as children:
            pending: dict[str, list[Future[pl.DataFrame] | Future[str]]] = {}
            with ThreadPoolExecutor(1) as here:
                for name, parts in slices.items():
                    pending[name] = [
                        _submit_slice(
                            children, here, engine, scans[name], part, f"{folder}/{name}-{n}.arrow"
                        )
                        for n, part in enumerate(parts)
                    ]
                return {name: _gather(scans[name], futures) for name, futures in pending.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_Slice = tuple[int | None, int | None] | None  # rowids [first, end) for a child; None: here


def _rowid_slices(engine: Engine, scan: TableScan) -> list[_Slice]:
    """Rowid ranges for children (the outer ones open-ended), or [None] to read here."""
    connection = engine.raw_connection()
    try:
        low, high = connection.execute(
            f"SELECT MIN(rowid), MAX(rowid) FROM {scan.table}"
        ).fetchone()
    finally:
        connection.close()
    if low is None or high - low + 1 < CHILD_READ_MIN_ROWS:
        return [None]
    step = (high - low + 1) / max(1, scan.slices)
    cuts = [low + round(step * n) for n in range(1, max(1, scan.slices))]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


def _submit_slice(
    children: Executor, here: Executor, engine: Engine, scan: TableScan, part: _Slice, target: str
) -> Future[pl.DataFrame] | Future[str]:
    """A small table is read here; a slice of a big one by a child, into the file `target`."""
    if part is None:
        return here.submit(read_frame, engine, scan.sql(), schema=scan.schema)
    database = str(Path(engine.url.database or "").resolve())
    return children.submit(read_slice_in_child, database, scan.sql(*part), scan.schema, target)


def _gather(scan: TableScan, futures: list[Future[pl.DataFrame] | Future[str]]) -> pl.DataFrame:
    frames = []
    for future in futures:
        result = future.result()
        if isinstance(result, pl.DataFrame):
            frames.append(result)
        else:
            frames.append(pl.read_ipc(result))
            Path(result).unlink()
    return pl.concat(frames) if len(frames) > 1 else frames[0]


def read_slice_in_child(database: str, sql: str, schema: dict[str, Any], target: str) -> str:
    """Runs in a child process: reads `sql` through ADBC, writes it to `target` as Arrow IPC.

    Never call it in the main process (see `read_tables_in_children`).
    """
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    with adbc_sqlite.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        table = cursor.fetch_arrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    del table
    cast_frame(frame, schema).write_ipc(target, compression="uncompressed")
    return target


def _read_scans_here(engine: Engine, scans: Mapping[str, TableScan]) -> dict[str, pl.DataFrame]:
    """Reads every scan in this process; the reads wait on the store, so they run side by side."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(read_frame, engine, scan.sql(), schema=scan.schema)
            for name, scan in scans.items()
        }
        return {name: future.result() for name, future in futures.items()}
