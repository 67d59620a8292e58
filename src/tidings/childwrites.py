"""Writing many rows to SQLite in a child process, via ADBC: replacing a big table of the
store in one transaction, or staging a batch in a throwaway file (`write_staged`).

A profile refresh writes a million profiles: binding some forty values a row through
Python's sqlite3 took about three times the CPU of ADBC's insert from Arrow. ADBC is only
ever loaded in child processes (`tidings.scans` says why); the rows reach the child through a
pipe as Arrow IPC batches while this process makes the next ones.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from tidings.scans import ChildStoreError, SqliteChildren

CHILD_WRITE_MIN_ROWS = 200_000  # rows; fewer are written here, in the caller's own way
CHILD_WRITE_ROWS = 100_000  # rows per ADBC ingest call in a writing child
PIPE_POLL_INTERVAL = 0.01  # seconds between looks for a writing child's end of the pipe
# A writing child's connection behaves as the engine's (tidings.db._sqlite_pragmas), but
# for foreign keys: with them on, SQLite deletes a child table's rows one by one (about
# 1.5 s for a million profiles) instead of dropping its pages at once, so they are checked
# once after the rows are in (`_check_foreign_keys`).
CHILD_WRITE_PRAGMAS = (
    "PRAGMA foreign_keys=OFF",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
)
# A staged file is thrown away after its batch (`tidings.imports.staging`): no journal, no sync.
STAGING_PRAGMAS = ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF")


def replace_rows_in_child(
    children: SqliteChildren,
    *,
    table: str,
    parts: Iterable[pl.DataFrame],
    rows: int,
    appended: Mapping[str, pl.DataFrame] | None = None,
) -> int:
    """In one transaction of a child: appends each of `appended` to its table, deletes
    every row of `table` and writes the `rows` rows of `parts` in its place; returns the
    rows written.

    The frames must hold what SQLite keeps (times and dates as text, booleans as integers).
    `parts` go to the child through a pipe as they are made, so that the child inserts one
    while this process makes the next (preparing a million profiles took about 2.5 s of CPU
    that the child spent waiting); the child keeps nothing unless all `rows` arrived.
    """
    extra = {}
    for name, frame in (appended or {}).items():
        extra[name] = children.file(f"append-{name}")
        _write_stream([frame], extra[name])
    pipe = children.file(f"write-{table}")
    os.mkfifo(pipe)
    try:
        future = children.submit(
            replace_rows_from_file, children.database, table, pipe, extra, rows
        )
        try:
            _write_stream(parts, pipe, child=future)
        except BrokenPipeError:
            return future.result()  # the child stopped reading: its own error says why
        except BaseException:
            _release(pipe)
            wait([future])  # the child saw the pipe close early and keeps nothing
            raise
        return future.result()
    finally:
        for path in [pipe, *extra.values()]:
            Path(path).unlink(missing_ok=True)


def _write_stream(
    parts: Iterable[pl.DataFrame], target: str, *, child: Future[int] | None = None
) -> None:
    """Writes `parts` as an Arrow IPC stream of at most CHILD_WRITE_ROWS-row batches (plain
    strings, which ADBC binds), one batch converted at a time. A pipe is opened once `child`
    opens its other end (raising the child's error if it stops first)."""
    import pyarrow as pa

    with _open_sink(target, child) as sink:
        writer = None
        for part in parts:
            if writer is None:
                schema = part.head(0).to_arrow().schema
                writer = pa.ipc.new_stream(sink, schema)
            for batch in part.iter_slices(CHILD_WRITE_ROWS):
                writer.write_table(batch.to_arrow().cast(schema))
        if writer is not None:
            writer.close()


def _release(pipe: str) -> None:
    """Lets a child still waiting to open `pipe` go on, to find it empty: opening a pipe
    for reading and writing at once never waits."""
    os.close(os.open(pipe, os.O_RDWR | os.O_NONBLOCK))


def _open_sink(target: str, child: Future[int] | None) -> BinaryIO:
    """`target` opened for writing; a pipe (`child` given) once its reader has opened it."""
    if child is None:
        return open(target, "wb")
    while True:
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if child.done():
                child.result()  # the child failed before reading: its error
                raise ChildStoreError("the writing child ended without reading") from None
            time.sleep(PIPE_POLL_INTERVAL)
    os.set_blocking(descriptor, True)
    return open(descriptor, "wb")


def replace_rows_from_file(
    database: str, table: str, source: str, appended: Mapping[str, str], rows: int
) -> int:
    """Runs in a child process: `replace_rows_in_child`'s transaction through ADBC.

    Never call it in the main process (see `read_tables_in_children`). Nothing is kept if
    anything fails: closing the connection rolls back what was not committed.
    """
    try:
        return _replace_rows(database, table, source, appended, rows)
    except Exception as error:  # ADBC's own errors cannot be rebuilt in the parent
        raise ChildStoreError(f"writing {table}: {error}") from None


def _replace_rows(
    database: str, table: str, source: str, appended: Mapping[str, str], rows: int
) -> int:
    import adbc_driver_sqlite.dbapi as adbc_sqlite
    import pyarrow as pa

    # Opened first: the parent starts preparing the rows while this child waits for the lock.
    with (
        open(source, "rb") as stream,  # a pipe: Arrow's own files would seek
        adbc_sqlite.connect(database, autocommit=True) as connection,
        connection.cursor() as cursor,
    ):
        for pragma in CHILD_WRITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.execute("BEGIN IMMEDIATE")
        for name, path in appended.items():
            with pa.OSFile(path) as appended_rows:
                cursor.adbc_ingest(name, pa.ipc.open_stream(appended_rows), mode="append")
        cursor.execute(f"DELETE FROM {table}")
        # Streamed a batch at a time, so that the child never holds every row at once.
        written = cursor.adbc_ingest(table, pa.ipc.open_stream(stream), mode="append")
        if written != rows:
            raise ChildStoreError(f"{written} of {rows} rows arrived; none was written")
        _check_foreign_keys(cursor, [table, *appended])
        cursor.execute("COMMIT")
    return written


def _check_foreign_keys(cursor: Any, tables: list[str]) -> None:
    """Raises if a row of `tables` refers to a row that does not exist (nothing is kept)."""
    for table in tables:
        cursor.execute(f"PRAGMA foreign_key_check({table})")
        broken = cursor.fetchall()
        if broken:
            _, rowid, parent, _ = broken[0]
            raise ChildStoreError(
                f"{len(broken)} row(s) of {table} refer to no row of {parent}"
                f" (the first: rowid {rowid}); none was written"
            )


def prepare_staging() -> None:
    """Runs in a child process just started: loads what `write_staged` needs."""
    import adbc_driver_sqlite  # noqa: F401


def write_staged(path: str, sources: Mapping[str, str]) -> dict[str, int]:
    """Runs in a child process: writes each Arrow IPC stream of `sources` (by table name)
    to a table of a new SQLite file at `path`, removes the streams, and returns the rows
    written to each table.

    Never call it in the main process (see `read_tables_in_children`)."""
    try:
        return _write_staged(path, sources)
    except Exception as error:  # ADBC's own errors cannot be rebuilt in the parent
        raise ChildStoreError(f"staging rows: {error}") from None


def _write_staged(path: str, sources: Mapping[str, str]) -> dict[str, int]:
    # ADBC's own API takes Polars frames as they are (Arrow's C stream): the child never
    # loads pyarrow, which took most of its start.
    import adbc_driver_manager
    import adbc_driver_sqlite

    with (
        adbc_driver_sqlite.connect(path) as database,
        adbc_driver_manager.AdbcConnection(database) as connection,
    ):
        for sql in (*STAGING_PRAGMAS, "BEGIN"):
            _execute(connection, sql)
        written = {}
        for table, source in sources.items():
            with adbc_driver_manager.AdbcStatement(connection) as statement:
                statement.set_options(
                    **{
                        "adbc.ingest.target_table": table,
                        "adbc.ingest.mode": "adbc.ingest.mode.create",
                    }
                )
                statement.bind_stream(pl.read_ipc_stream(source))
                written[table] = int(statement.execute_update())
        _execute(connection, "COMMIT")
    for source in sources.values():
        os.unlink(source)
    return written


def _execute(connection: Any, sql: str) -> None:
    """Runs one statement on an ADBC connection (of its own API)."""
    import adbc_driver_manager

    with adbc_driver_manager.AdbcStatement(connection) as statement:
        statement.set_sql_query(sql)
        statement.execute_update()
