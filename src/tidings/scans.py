"""Reading several whole tables at once; on SQLite in child processes through ADBC.

A profile refresh reads millions of order lines and writes a million profiles. In this
process SQLite is only opened through Python's sqlite3 (see `tidings.db`), which costs a
Python value per cell; children read (here) and write (`tidings.childwrites`) through ADBC,
which moves Arrow directly, and the frames travel between the processes as Arrow IPC files.
The children import only Polars and ADBC (this module keeps SQLAlchemy out of its imports),
so they start quickly.
"""

from __future__ import annotations

import atexit
import multiprocessing
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from tidings.casts import cast_frame

if TYPE_CHECKING:
    from sqlalchemy import Engine

_Result = TypeVar("_Result")

CHILD_READ_MIN_ROWS = 200_000  # rowids; a smaller table is read here (a child costs ~1 s)
CHILD_READERS = 2  # processes reading side by side; SQLite reads are CPU-bound
# Rows per Arrow batch a reading child asks ADBC for: its default, 1,024, made ten
# thousand batches of ten million lines, about a tenth of the children's CPU in per-batch work.
CHILD_READ_BATCH_ROWS = 65_536


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
    # Text columns made categorical where they are read, empty text becoming null: a
    # child hands back each distinct text once instead of once per row.
    categorical: tuple[str, ...] = ()
    # Only the rows whose rowid is from the first up to (not including) the second.
    rowids: tuple[int, int] | None = None

    def sql(self, first: int | None = None, end: int | None = None) -> str:
        """The query, limited to rowids from `first` up to (not including) `end` if given,
        and to `rowids` if set."""
        if self.rowids is not None:
            low, high = self.rowids
            first = low if first is None else max(first, low)
            end = high if end is None else min(end, high)
        bounds = [f"rowid >= {int(first)}"] if first is not None else []
        bounds += [f"rowid < {int(end)}"] if end is not None else []
        where = " AND ".join([f"({self.where})", *bounds])
        return f"SELECT {self.columns} FROM {self.table} WHERE {where}"


class SqliteChildren:
    """Spawned processes reading and writing one SQLite store, started on first use.

    `tidings.db` explains why ADBC is never loaded in this process. Children are spawned
    (never forked from a process holding SQLite connections); each works on a connection of
    its own, and frames travel as Arrow IPC files in a folder beside the store.
    """

    def __init__(self, database: str) -> None:
        self.database = str(Path(database).resolve())
        self._pool: ProcessPoolExecutor | None = None
        self._folder: str | None = None

    def submit(self, work: Callable[..., _Result], *args: Any) -> Future[_Result]:
        """Runs `work(*args)` in one of the processes, starting it if none is free."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(CHILD_READERS, mp_context=context)
        # The pool starts a process inside submit when it needs one.
        with _main_script_not_rerun():
            return self._pool.submit(work, *args)

    def start(self) -> None:
        """Starts every process now, while this one is small: a process spawned later begins
        as a copy of this one's memory until it runs its own program, and reports that as
        its peak (as `resource.getrusage` would count it)."""
        for _ in range(CHILD_READERS):
            self.submit(_started)

    def file(self, name: str) -> str:
        """A path for an IPC file in the folder beside the store."""
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix=".tidings-read-", dir=Path(self.database).parent)
        return f"{self._folder}/{name}.arrow"

    def close(self) -> None:
        """Stops the processes and removes the folder."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _started() -> None:
    """Runs in a child process just started: nothing more."""


_MAIN_SPEC_LOCK = threading.Lock()


@contextmanager
def _main_script_not_rerun() -> Iterator[None]:
    """Processes spawned in the block do not run the script this process was started with.

    A spawned process runs the parent's main script again (as `__mp_main__`) unless the
    script is a package's `__main__`: for the `tidings` command that imported the whole
    application in every child, two to three seconds of CPU on the cores a refresh reads
    with; and a script calling tidings without an `if __name__ == "__main__"` guard would
    run again in each child. The children only run functions of this module.
    """
    main = sys.modules["__main__"]
    with _MAIN_SPEC_LOCK:  # threads starting children at once restore the right spec
        spec = getattr(main, "__spec__", None)
        main.__spec__ = ModuleSpec("__main__", None)  # what a child leaves alone
        try:
            yield
        finally:
            main.__spec__ = spec


@contextmanager
def sqlite_children(engine: Engine) -> Iterator[SqliteChildren | None]:
    """Children for a SQLite file store, kept for the block; None on any other store."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield None
        return
    children = SqliteChildren(database)
    try:
        yield children
    finally:
        children.close()


def read_tables_in_children(
    engine: Engine,
    scans: Mapping[str, TableScan],
    children: SqliteChildren | None = None,
    *,
    keep: Mapping[str, Path] | None = None,
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
    `children` (from `sqlite_children`) are used when given, else the store's kept ones
    (`kept_children`; fresh ones and a second try if one of those has died meanwhile).
    The files of the scans named in `keep` are left in the folder given for each, named by
    slice in rowid order (`0000.arrow`, ...), instead of being removed.
    """
    keep = keep or {}
    if children is not None:
        return _read_slices(engine, scans, children, keep, None)
    try:
        return _read_with_kept(engine, scans, keep)
    except BrokenProcessPool:  # a kept child was killed meanwhile (out of memory, by hand)
        stop_kept_children()
        return _read_with_kept(engine, scans, keep)


def _read_with_kept(
    engine: Engine, scans: Mapping[str, TableScan], keep: Mapping[str, Path]
) -> dict[str, pl.DataFrame]:
    """Reads the scans with the store's kept children, each read's files in a folder."""
    kept = kept_children(engine)
    if kept is None:
        return _read_scans_here(engine, scans)
    with _read_folder(kept.database) as folder:
        return _read_slices(engine, scans, kept, keep, folder)


def _read_slices(
    engine: Engine,
    scans: Mapping[str, TableScan],
    children: SqliteChildren,
    keep: Mapping[str, Path],
    folder: str | None,
) -> dict[str, pl.DataFrame]:
    """Reads each big table's rowid slices in children and the small tables here."""
    slices = {name: _rowid_slices(engine, scan) for name, scan in scans.items()}
    if all(part is None for parts in slices.values() for part in parts):
        return _read_scans_here(engine, scans)
    pending: dict[str, list[Future[pl.DataFrame] | Future[str]]] = {}
    with ThreadPoolExecutor(1) as here:
        for name, parts in slices.items():
            pending[name] = [
                _submit_slice(
                    children,
                    here,
                    engine,
                    scans[name],
                    part,
                    _target(children, keep, name, n, folder),
                )
                for n, part in enumerate(parts)
            ]
        return {
            name: _gather(futures, remove=name not in keep) for name, futures in pending.items()
        }


_KEPT: dict[str, SqliteChildren] = {}
_KEPT_LOCK = threading.Lock()


def kept_children(engine: Engine) -> SqliteChildren | None:
    """Children kept between reads of a SQLite file store (None for any other store).

    Starting two children costs about half a second of both cores (Python, Polars and ADBC
    each time); a campaign plan reads its audience and then history, and
    `tidings serve` reads for every plan and count. One store's children are kept at a time
    (another store's read replaces them) and stop when this process ends.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    path = str(Path(database).resolve())
    with _KEPT_LOCK:
        children = _KEPT.get(path)
        if children is None:
            _close_kept()
            children = _KEPT[path] = SqliteChildren(path)
        return children


def start_kept_children(engine: Engine, table: str) -> None:
    """Starts the store's kept children without waiting for them, when a read of `table`
    would be cut into slices for them (a SQLite file, the table big enough): they start
    while the caller does something else first."""
    if engine.dialect.name != "sqlite":
        return
    bounds = _rowid_range(engine, table)
    if bounds is None or bounds[1] - bounds[0] < CHILD_READ_MIN_ROWS:
        return
    children = kept_children(engine)
    if children is not None:
        children.start()


def _close_kept() -> None:
    """Stops the kept children (the caller holds `_KEPT_LOCK`, or this process is ending)."""
    for children in _KEPT.values():
        children.close()
    _KEPT.clear()


def stop_kept_children() -> None:
    """Stops the children kept between reads; the next read starts new ones."""
    with _KEPT_LOCK:
        _close_kept()


atexit.register(_close_kept)


@contextmanager
def _read_folder(database: str) -> Iterator[str]:
    """A folder beside the store for one read's IPC files, removed after it (reads side by
    side through the kept children each have their own)."""
    folder = tempfile.mkdtemp(prefix=".tidings-read-", dir=Path(database).parent)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _target(
    children: SqliteChildren,
    keep: Mapping[str, Path],
    name: str,
    part: int,
    folder: str | None,
) -> str:
    """Where the child reading part `part` of the scan `name` writes it: in `keep`'s folder
    for the scan, else in `folder` (one read's), else in the children's own."""
    kept = keep.get(name)
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        return str(kept / f"{part:04d}.arrow")
    if folder is not None:
        return f"{folder}/{name}-{part}.arrow"
    return children.file(f"{name}-{part}")


class ChildStoreError(RuntimeError):
    """A child process's read or write failed; the message is the store's error."""


_Slice = tuple[int | None, int | None] | None  # rowids [first, end) for a child; None: here


def _rowid_slices(engine: Engine, scan: TableScan) -> list[_Slice]:
    """Rowid ranges for children (the outer ones open-ended), or [None] to read here."""
    bounds = _rowid_range(engine, scan.table) if scan.rowids is None else scan.rowids
    if bounds is None or bounds[1] - bounds[0] < CHILD_READ_MIN_ROWS:
        return [None]
    low, high = bounds[0], bounds[1] - 1
    step = (high - low + 1) / max(1, scan.slices)
    cuts = [low + round(step * n) for n in range(1, max(1, scan.slices))]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


def _rowid_range(engine: Engine, table: str) -> tuple[int, int] | None:
    """The rowids of `table`: from the lowest up to (not including) the highest plus one;
    None when it is empty."""
    connection = engine.raw_connection()
    try:
        # Two subqueries: SQLite finds a lone MIN or MAX at one end of the table's b-tree,
        # but answers MIN and MAX together by scanning the whole table (or an index).
        low, high = connection.execute(
            f"SELECT (SELECT MIN(rowid) FROM {table}), (SELECT MAX(rowid) FROM {table})"
        ).fetchone()
    finally:
        connection.close()
    return None if low is None else (low, high + 1)


def _submit_slice(
    children: SqliteChildren,
    here: Executor,
    engine: Engine,
    scan: TableScan,
    part: _Slice,
    target: str,
) -> Future[pl.DataFrame] | Future[str]:
    """A small table is read here; a slice of a big one by a child, into the file `target`."""
    if part is None:
        return here.submit(read_here, engine, scan)
    return children.submit(
        read_slice_in_child,
        children.database,
        scan.sql(*part),
        scan.schema,
        target,
        scan.categorical,
    )


def _gather(
    futures: list[Future[pl.DataFrame] | Future[str]], *, remove: bool = True
) -> pl.DataFrame:
    frames = []
    for future in futures:
        result = future.result()
        if isinstance(result, pl.DataFrame):
            frames.append(result)
        else:
            frames.append(pl.read_ipc(result))
            if remove:
                Path(result).unlink()
    return pl.concat(frames) if len(frames) > 1 else frames[0]


def read_slice_in_child(
    database: str,
    sql: str,
    schema: dict[str, Any],
    target: str,
    categorical: tuple[str, ...] = (),
) -> str:
    """Runs in a child process: reads `sql` through ADBC, writes it to `target` as Arrow IPC.

    Never call it in the main process (see `read_tables_in_children`).
    """
    # ADBC's low-level API hands Polars the Arrow stream itself: its DB-API would import
    # pyarrow, a quarter of a second of every child's start.
    import adbc_driver_manager
    import adbc_driver_sqlite

    try:
        with (
            adbc_driver_sqlite.connect(database) as store,
            adbc_driver_manager.AdbcConnection(store) as connection,
            adbc_driver_manager.AdbcStatement(connection) as statement,
        ):
            statement.set_options(**{"adbc.sqlite.query.batch_rows": str(CHILD_READ_BATCH_ROWS)})
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            frame = pl.DataFrame(stream)
    except Exception as error:  # ADBC's own errors cannot be rebuilt in the parent
        raise ChildStoreError(f"reading {sql}: {error}") from None
    _categorical(cast_frame(frame, schema), categorical).write_ipc(
        target, compression="uncompressed"
    )
    return target


def _categorical(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """The text `columns` as categorical, empty text as null."""
    if not columns:
        return frame
    return frame.with_columns(
        pl.col(name).replace("", None).cast(pl.Categorical) for name in columns
    )


def read_here(engine: Engine, scan: TableScan) -> pl.DataFrame:
    """Reads `scan` in this process."""
    from tidings.db import read_frame

    return _categorical(read_frame(engine, scan.sql(), schema=scan.schema), scan.categorical)


def _read_scans_here(engine: Engine, scans: Mapping[str, TableScan]) -> dict[str, pl.DataFrame]:
    """Reads every scan in this process; the reads wait on the store, so they run side by side."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(read_here, engine, scan) for name, scan in scans.items()}
        return {name: future.result() for name, future in futures.items()}
