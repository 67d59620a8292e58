"""Writing Polars frames into the store in bulk, inside a session's transaction.

PostgreSQL takes rows by COPY (binary where every column's type allows). SQLite takes them
through the session's own pysqlite connection (a second SQLite library in the process would
break the file locks of the first), in multi-row INSERTs laid out a column at a time.
`BulkStore` gathers these for imports and plans; `bulk_store` opens one.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

import polars as pl
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from tidings import pgcopy, references
from tidings.casts import cast_frame
from tidings.db import (
    POLARS_SQLITE_TIME_FORMAT,
    REFERENCES_PER_FRAME_OPTION,
    is_sqlite,
    session_factory,
)

_FOUND_KEYS = "tidings_found_keys"  # a per-frame store's session info: `references.FoundKeys`


def bulk_insert(session: Session, table: str, frame: pl.DataFrame) -> int:
    """Inserts every row of `frame` into `table` inside the session's transaction."""
    if frame.height == 0:
        return 0
    columns = frame.columns
    raw = _driver_connection(session)
    if is_sqlite(session):
        _check_per_frame(session, table, frame)
        placeholders = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
        raw.executemany(sql, _sqlite_rows(frame))
    else:
        _copy_into(raw, table, frame)
    return frame.height


UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE for a key that a row holds already


def copy_unless_taken(session: Session, table: str, frame: pl.DataFrame) -> bool:
    """COPYs every row of `frame` into `table` (PostgreSQL) and tells whether they went in:
    when a unique key of one is taken already, nothing is written (a savepoint is rolled
    back) and the caller inserts the rows its own way, skipping those keys.

    Staging rows in a temporary table to insert them with ON CONFLICT DO NOTHING cost the
    server more than twice a plain COPY; a key taken already is rare (a code another
    campaign holds).
    """
    savepoint = session.begin_nested()
    try:
        bulk_insert(session, table, frame)
    except Exception as error:
        savepoint.rollback()
        if getattr(error, "sqlstate", None) == UNIQUE_VIOLATION:
            return False
        raise
    savepoint.commit()
    return True


SQLITE_ROWS_PER_STATEMENT = 100  # rows in one multi-row INSERT (SQLite allows 32,766 markers)
SQLITE_APPEND_BLOCK = 50_000  # rows turned into parameters at a time, to bound memory


def append_rows(
    session: Session,
    table: str,
    frame: pl.DataFrame,
    *,
    verb: str = "INSERT",
) -> int:
    """Inserts every row of `frame` into `table` (`verb` may be `INSERT OR IGNORE` on SQLite).

    On SQLite, binding one statement per row costs more than SQLite's own work, so rows go
    in `SQLITE_ROWS_PER_STATEMENT` at a time, their values laid out by numpy in one pass. A
    column that holds one value all through a block of rows (the time of writing, a kind, an
    empty column) is bound once per statement, not once per row: binding a value costs about
    as much as SQLite's storing it, and an empty one several times that. Returns the rows
    written (on SQLite, those an `OR IGNORE` did not skip); a block is laid out while SQLite
    stores the one before (`run_laid_out`). PostgreSQL uses COPY, as `bulk_insert` does.
    """
    if frame.height == 0:
        return 0
    if not is_sqlite(session):
        return bulk_insert(session, table, frame)
    raw = _driver_connection(session)
    _check_per_frame(session, table, frame)
    # Ids SQLite would give the rows anyway are left for it to give: one value less a row.
    written_rows = (
        frame.drop("id") if verb == "INSERT" and _next_rowids(raw, table, frame) else frame
    )
    per = SQLITE_ROWS_PER_STATEMENT

    def lay_out(start: int) -> LaidOut:
        block = _sqlite_ready(written_rows.slice(start, SQLITE_APPEND_BLOCK))
        shared = _shared_values(block)
        once = list(shared.values())
        grouped, rest = multi_row_params(block.drop(list(shared)), per)
        return [
            (
                _values_sql(verb, table, block.columns, list(shared), rows),
                [once + v for v in params],
            )
            for params, rows in ((grouped, per), (rest, 1))
        ]

    starts = range(0, frame.height, SQLITE_APPEND_BLOCK)
    written = run_laid_out(raw, (functools.partial(lay_out, start) for start in starts))
    found = session.info.get(_FOUND_KEYS)
    if found is not None and verb == "INSERT" and "id" in frame.columns:
        found.add(raw, table, frame["id"].unique().sort())  # new rows, parents of later ones
    return int(written)


# Statements, each with the parameters of every time it runs (`executemany`).
LaidOut = list[tuple[str, list[Any]]]


def run_laid_out(raw: Any, blocks: Iterable[Callable[[], LaidOut]]) -> int:
    """Runs the statements each of `blocks` lays out, block after block, on the SQLite
    connection `raw`; returns the rows they changed.

    The next block is laid out (its values turned into Python parameters) on a thread while
    SQLite stores the one before: SQLite lets go of the GIL while it steps, so the two
    overlap. One block is laid out ahead at most, which bounds the memory.
    """
    written = 0
    pending = iter(blocks)
    with ThreadPoolExecutor(1, thread_name_prefix="tidings-lay-out") as laying:
        block = next(pending, None)
        ahead = None if block is None else laying.submit(block)
        while ahead is not None:
            statements = ahead.result()
            block = next(pending, None)
            ahead = None if block is None else laying.submit(block)
            for sql, params in statements:
                if params:
                    written += raw.executemany(sql, params).rowcount
    return written


class WriteBehind:
    """Runs writes on one thread, in the order they are handed over, while the caller goes
    on to make the next: a plan's messages are stored while its next piece is rendered.

    The writes own the session's connection until `wait` returns, so the caller leaves the
    store alone meanwhile. After a write fails, the ones handed over later are dropped, and
    the next `submit` or `wait` raises its error. Leaving the block, also on an error, waits
    for the write under way and drops those not begun, so the transaction may be rolled back.
    """

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-write-behind")
        self._writes: list[Future[None]] = []
        self._failed: Exception | None = None

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)

    def submit(self, write: Callable[[], object]) -> None:
        """Hands `write` over, to run after those handed over before it."""
        self._raise_failure()
        self._writes.append(self._thread.submit(self._run, write))

    def wait(self) -> None:
        """Returns once every write handed over has run; raises the error of one that failed."""
        for write in self._writes:
            write.result()
        self._writes.clear()
        self._raise_failure()

    def _run(self, write: Callable[[], object]) -> None:
        if self._failed is not None:
            return
        try:
            write()
        except Exception as error:
            self._failed = error

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed


def _next_rowids(raw: Any, table: str, frame: pl.DataFrame) -> bool:
    """Whether `frame`'s `id` column holds the ids SQLite gives rows appended to `table`
    without one: its rowid, counted on from the highest one, in order (the caller holds the
    write transaction, so no other rows come between)."""
    if "id" not in frame.columns or frame["id"].null_count():
        return False
    info = raw.execute(f"PRAGMA table_info({table})").fetchall()
    keys = [(name, kind) for _, name, kind, _, _, pk in info if pk]
    if keys != [("id", "INTEGER")]:  # only an INTEGER PRIMARY KEY is the rowid itself
        return False
    top = raw.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0] or 0
    ids = frame["id"]
    return bool(ids[0] == top + 1 and (ids.diff().drop_nulls() == 1).all())


def _shared_values(block: pl.DataFrame) -> dict[str, Any]:
    """The columns of `block` that hold one value in every row (empty counts as a value),
    with that value; one column at least is left out, to lay the rows out by."""
    counts = block.select(pl.all().n_unique()).row(0)
    names = [name for name, count in zip(block.columns, counts, strict=True) if count == 1]
    return {name: block[name][0] for name in names[: block.width - 1]}


def _values_sql(
    verb: str,
    table: str,
    columns: list[str],
    shared: list[str],
    rows: int,
) -> str:
    """`{verb} INTO {table} ... VALUES` for `rows` rows: the `shared` columns take the first
    parameters (?1, ?2, ...) in every row, the other columns theirs after those, row by row."""
    varying = [name for name in columns if name not in shared]
    marker = {name: f"?{number}" for number, name in enumerate(shared, 1)}
    groups = []
    for row in range(rows):
        first = len(shared) + row * len(varying) + 1
        marker.update({name: f"?{first + offset}" for offset, name in enumerate(varying)})
        groups.append("(" + ", ".join(marker[name] for name in columns) + ")")
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES {', '.join(groups)}"


def multi_row_params(frame: pl.DataFrame, per: int) -> tuple[list[Any], list[Any]]:
    """The values of `frame` as parameters of statements inserting `per` rows each, and of
    the rows left over, one statement each: laid out in one list a column at a time (each
    column's values go to every `width`-th place in one slice assignment), not row by row,
    then cut into statements. (Through a numpy array of objects it took a quarter longer.)"""
    width = frame.width
    values: list[Any] = [None] * (frame.height * width)
    for index, column in enumerate(frame.get_columns()):
        values[index::width] = column.to_list()
    size, full = per * width, frame.height // per * per * width
    grouped = [values[start : start + size] for start in range(0, full, size)]
    return grouped, [values[start : start + width] for start in range(full, len(values), width)]


def execute_many(session: Session, sql: str, frame: pl.DataFrame) -> None:
    """Runs a DBAPI statement with qmark (SQLite) or %s (PostgreSQL) markers for each row."""
    if frame.height == 0:
        return
    raw = _driver_connection(session)
    if is_sqlite(session):
        raw.executemany(sql, _sqlite_rows(frame))
    else:
        with raw.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), frame.rows())


@contextmanager
def wide_page_cache(session: Session, kib: int) -> Iterator[None]:
    """Gives SQLite a page cache of `kib` KiB for the block, then the one it had.

    A bulk write into a table with random keys (codes, phones) touches a random page of
    their index per row: with the default 2 MiB cache each would be spilled and read back.
    The setting belongs to the connection under the session's current transaction; a cache
    as large already (a whole file's import holds one) is left as it is.
    """
    if not is_sqlite(session):
        yield
        return
    raw = _driver_connection(session)
    previous = int(raw.execute("PRAGMA cache_size").fetchone()[0])
    if previous < 0 and -previous >= kib:
        yield
        return
    raw.execute(f"PRAGMA cache_size = -{kib}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size = {previous}")


def _check_per_frame(session: Session, table: str, frame: pl.DataFrame) -> None:
    """Checks the references of `frame`'s rows when SQLite leaves them: in a per-frame store
    (`bulk_store`), the session that holds found keys."""
    found = session.info.get(_FOUND_KEYS)
    if found is not None:
        references.check_frame(_driver_connection(session), table, frame, found)


def _driver_connection(session: Session) -> Any:
    """The DBAPI connection under the session's current transaction."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    return raw


def _sqlite_rows(frame: pl.DataFrame) -> Sequence[tuple[Any, ...]]:
    """SQLite has no time types: timestamps go in as UTC text, the way UtcDateTime writes them."""
    return _sqlite_ready(frame).rows()


def _sqlite_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Turns times, dates and nested values into the text SQLite keeps for them, and
    booleans into 0/1."""
    converted = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                column = column.dt.convert_time_zone("UTC")
            converted.append(column.dt.strftime(POLARS_SQLITE_TIME_FORMAT).alias(name))
        elif dtype == pl.Date:
            converted.append(column.dt.strftime("%Y-%m-%d").alias(name))
        elif dtype == pl.Boolean:  # as 0/1: a bool is bound through the adapter lookup
            converted.append(column.cast(pl.Int64))
        elif dtype in (pl.List, pl.Struct) or isinstance(dtype, pl.List | pl.Struct):
            converted.append(column.map_elements(_json_text, return_dtype=pl.String).alias(name))
    if converted:
        frame = frame.with_columns(converted)
    return frame


def sqlite_values(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` as SQLite keeps it, for a writer other than this process's sqlite3: times and
    dates as text, nested values as JSON text (as `bulk_insert` writes them), booleans as 0/1."""
    return _sqlite_ready(frame)


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _copy_into(raw: Any, table: str, frame: pl.DataFrame) -> None:
    """COPY in binary where every column's type allows (`tidings.pgcopy`), else in CSV."""
    columns = ", ".join(frame.columns)
    with raw.cursor() as cursor:
        types = pgcopy.column_types(cursor, table)
        if pgcopy.encodable(frame, types):
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT binary)") as copy:
                for block in pgcopy.copy_data(frame, types):
                    copy.write(block)
            return
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, null_value="\\N", datetime_format=None)
    with raw.cursor() as cursor:
        columns = ", ".join(frame.columns)
        sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, NULL '\\N')"
        with cursor.copy(sql) as copy:
            copy.write(buffer.getvalue())


class BulkStore:
    """Moves Polars frames in and out of the store in bulk, inside a session's transaction.

    SQL is written with `?` markers; temporary tables are created with `create_temp` and live
    until the transaction ends or the table is created again. `commit` commits the session.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = "sqlite" if is_sqlite(session) else "postgresql"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs one statement and returns the number of rows it changed."""
        raw = _driver_connection(self.session)
        if self.dialect == "sqlite":
            return int(raw.execute(sql, tuple(params)).rowcount)
        with raw.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), tuple(params))
            return int(cursor.rowcount)

    def frame(
        self, sql: str, params: Sequence[Any] = (), *, schema: dict[str, Any]
    ) -> pl.DataFrame:
        """Runs a query and returns its rows as a frame cast to `schema`."""
        raw = _driver_connection(self.session)
        if self.dialect == "sqlite":
            rows = raw.execute(sql, tuple(params)).fetchall()
        else:
            with raw.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), tuple(params))
                rows = cursor.fetchall()
        frame = pl.DataFrame(rows, schema=list(schema), orient="row", infer_schema_length=None)
        return cast_frame(frame, schema)

    def ingest(self, table: str, frame: pl.DataFrame) -> int:
        """Appends every row of `frame` to `table` (its columns named as the frame's)."""
        return bulk_insert(self.session, table, frame)

    def append(self, table: str, frame: pl.DataFrame, *, verb: str = "INSERT") -> int:
        """Appends rows like `ingest`, faster on SQLite (`append_rows`); returns rows written."""
        return append_rows(self.session, table, frame, verb=verb)

    def execute_rows(self, sql: str, frame: pl.DataFrame) -> None:
        """Runs one statement (with `?` markers) for every row of `frame`."""
        execute_many(self.session, sql, frame)

    def check_references(self, table: str, frame: pl.DataFrame) -> None:
        """Raises when a row of `frame`, about to be written to `table` other than by
        `append` (an update), refers to a row that does not exist, where SQLite would not
        check it itself (`bulk_store`'s `references_per_frame`)."""
        if self.dialect == "sqlite":
            _check_per_frame(self.session, table, frame)

    def note_found(self, table: str, ids: pl.Series) -> None:
        """Notes that rows of `table` with these ids exist, as read in the current
        transaction: frames that refer to them are not looked up again (`bulk_store`'s
        `references_per_frame`)."""
        found = self.session.info.get(_FOUND_KEYS)
        if found is not None and self.dialect == "sqlite":
            raw = _driver_connection(self.session)
            found.add(raw, table, found.unseen(raw, table, ids.drop_nulls().unique().sort()))

    def file_version(self) -> tuple[int, int] | None:
        """SQLite: the same in two transactions when no other connection wrote to the file
        in between (`references.file_version`); None elsewhere."""
        if self.dialect != "sqlite":
            return None
        return references.file_version(_driver_connection(self.session))

    def commit(self) -> None:
        """Ends the current transaction, keeping its changes."""
        self.session.commit()

    def create_temp(self, table: str, columns: dict[str, str]) -> None:
        """Creates (or recreates, empty) a temporary table of the given SQL column types."""
        body = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
        if self.dialect == "sqlite":
            self.execute(f"DROP TABLE IF EXISTS temp.{table}")
            self.execute(f"CREATE TEMP TABLE {table} ({body})")
        else:
            self.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
            self.execute(f"CREATE TEMP TABLE {table} ({body}) ON COMMIT DROP")


@contextmanager
def bulk_store(engine: Engine, *, references_per_frame: bool = False) -> Iterator[BulkStore]:
    """Opens a bulk connection to the store (a session of its own, on either engine).

    Nothing is committed unless the caller calls `commit`; what is left open is rolled back.
    SQLite goes through the same pysqlite connection as everything else on purpose: a second
    SQLite library in the process (ADBC's) would drop this process's file locks when it closes.

    `references_per_frame`: SQLite checks the references of the rows `append` writes a frame
    at a time, not row by row (`tidings.references`); other writes must check theirs with
    `check_references`. PostgreSQL checks every row as always.
    """
    with ExitStack() as stack:
        if references_per_frame:
            # What it found is true of its connection's view: the store keeps one connection.
            options = {REFERENCES_PER_FRAME_OPTION: True}
            connection = stack.enter_context(engine.execution_options(**options).connect())
            session = stack.enter_context(Session(bind=connection, expire_on_commit=False))
            found = session.info[_FOUND_KEYS] = references.FoundKeys()
            # Rows the store wrote and rolled back are gone: so are the keys it knew of them.
            event.listen(session, "after_soft_rollback", lambda *_: found.clear())
        else:
            session = stack.enter_context(session_factory(engine)())
        try:
            yield BulkStore(session)
        finally:
            session.rollback()
