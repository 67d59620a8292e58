"""The store: engine and session factory, the declarative Base, and Arrow bulk helpers.

Rows move in bulk as Polars frames. In this process SQLite is only opened through Python's
own sqlite3 (a second SQLite library in the process would break the file locks of the
first); big SQLite tables are read by child processes through ADBC
(`tidings.scans.read_tables_in_children`). On PostgreSQL reads go through ADBC straight into Arrow.
Writes go through the session's own connection (executemany on SQLite, COPY on PostgreSQL)
so that they join the caller's transaction.
"""

from __future__ import annotations

import atexit
import io
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from tidings import pgcopy, references
from tidings.casts import cast_frame
from tidings.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
# Polars' %f writes nanoseconds; SQLAlchemy reads SQLite times with microseconds.
POLARS_SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%6f"
FETCH_ROWS = 100_000  # rows per block when reading SQLite into a frame
ADBC_IDLE_MAX = 8  # ADBC connections kept open per PostgreSQL store between reads
_ADBC_IDLE: dict[str, list[Any]] = {}
_ADBC_LOCK = threading.Lock()


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC on every engine (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every table; constraint names are stable so migrations can refer to them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Connections kept open: one per worker thread of the server (anyio's 40), so that requests
# in flight together do not each open a connection (and run its PRAGMAs) and close it again.
SQLITE_POOL_SIZE = 40
WRITING_OPTION = "tidings_writing"  # an engine option: SQLite begins with the write lock
# An engine option: SQLite leaves references to `BulkStore.append` (`tidings.references`).
REFERENCES_PER_FRAME_OPTION = "tidings_references_per_frame"
_ROW_CHECKS = "tidings_sqlite_row_checks"  # a connection's info: whether SQLite checks references
_FOUND_KEYS = "tidings_found_keys"  # a per-frame store's session info: `references.FoundKeys`


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str | None = None, *, schema: str | None = None) -> Engine:
    """Creates an engine for `url` (default: settings); `schema` sets PostgreSQL's search_path."""
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        engine = create_engine(
            url, connect_args={"timeout": 30}, pool_size=SQLITE_POOL_SIZE, max_overflow=20
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that
        # SAVEPOINTs and bulk writes stay inside the session's transaction.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    parsed = make_url(url)
    if schema:
        parsed = parsed.update_query_dict({"options": f"-csearch_path={schema}"})
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    # SQLite reads this setting only between transactions. The pooled connection keeps it,
    # so it is set when it is not as this transaction wants it.
    row_checks = not options.get(REFERENCES_PER_FRAME_OPTION, False)
    if connection.info.get(_ROW_CHECKS, True) != row_checks:
        connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if row_checks else 'OFF'}")
        connection.info[_ROW_CHECKS] = row_checks
    writing = options.get(WRITING_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Returns the session factory for `engine`; sessions never commit by themselves."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Opens a session, commits when the block succeeds and rolls back when it raises."""
    with session_factory(engine)() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def writing_scope(engine: Engine) -> Iterator[Session]:
    """A `session_scope` for work that reads and then writes beside other writers. On SQLite
    its transaction takes the write lock as it begins, waiting its turn (busy_timeout), where a
    transaction that began by reading fails at once with "database is locked" when another
    writer committed since its read. Keep the reading before it short: it holds others' writes."""
    with session_scope(engine.execution_options(**{WRITING_OPTION: True})) as session:
        yield session


def is_sqlite(bind: Engine | Connection | Session) -> bool:
    """Tells whether `bind` talks to SQLite."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "sqlite"


def read_frame(engine: Engine, sql: str, *, schema: dict[str, Any] | None = None) -> pl.DataFrame:
    """Runs `sql` on a connection of its own and returns the rows as a frame, cast to `schema`.

    It reads committed data (WAL lets it run beside writers). SQLite is read through the
    engine's own pysqlite connections; PostgreSQL through ADBC straight into Arrow.
    Timestamp columns named in `schema` as `pl.Datetime` are parsed from SQLite's text.
    """
    if engine.dialect.name == "sqlite":
        frame = _read_sqlite(engine, sql)
    else:
        table = _read_postgresql(_libpq_uri(engine), sql)
        converted = pl.from_arrow(table)
        assert isinstance(converted, pl.DataFrame)
        frame = converted
    return cast_frame(frame, schema) if schema else frame


def _read_postgresql(uri: str, sql: str) -> Any:
    """Runs a query through an ADBC connection kept open between reads (opening one costs
    about a tenth of a second, more than a small read); returns an Arrow table."""
    with _ADBC_LOCK:
        connection = _ADBC_IDLE.setdefault(uri, []).pop() if _ADBC_IDLE.get(uri) else None
    if connection is not None:
        try:
            return _read_on(connection, uri, sql)
        except Exception:
            connection.close()  # the server may have closed it while idle: try a fresh one
    import adbc_driver_postgresql.dbapi as adbc_postgresql

    return _read_on(adbc_postgresql.connect(uri), uri, sql)


@atexit.register
def _close_idle_readers() -> None:
    """Closes the kept ADBC connections before the interpreter tears their driver down."""
    with _ADBC_LOCK:
        for idle in _ADBC_IDLE.values():
            while idle:
                idle.pop().close()


def _read_on(connection: Any, uri: str, sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        table = cursor.fetch_arrow_table()
    # End the read's transaction: an idle connection must hold no locks.
    connection.rollback()
    with _ADBC_LOCK:
        idle = _ADBC_IDLE.setdefault(uri, [])
        if len(idle) < ADBC_IDLE_MAX:
            idle.append(connection)
            return table
    connection.close()
    return table


def _read_sqlite(engine: Engine, sql: str) -> pl.DataFrame:
    """Fetches in large blocks, each turned into a frame by Polars' row reader.

    Only Python's own SQLite library may open the file: a second one in the process (such
    as ADBC's) believes, when its connection closes, that it held the last one; it then
    checkpoints and deletes the WAL under the engine's open connections and drops their
    locks (stale reads, 'disk I/O error', 'database is locked').
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        names = [column[0] for column in cursor.description]
        blocks = []
        while rows := cursor.fetchmany(FETCH_ROWS):
            blocks.append(_block_frame(rows, names))
        cursor.close()
    finally:
        connection.close()
    if not blocks:
        return pl.DataFrame(schema={name: pl.Null for name in names})
    return pl.concat(blocks, how="vertical_relaxed")


def _block_frame(rows: Sequence[Any], names: list[str]) -> pl.DataFrame:
    """One block of rows as a frame, each column's type inferred from all of its values.

    SQLite keeps a type per value, not per column: a column mixing text and numbers falls
    back to a slower reader that keeps every value (as text where it must).
    """
    try:
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        columns = zip(*rows, strict=True)
        return pl.DataFrame(
            [
                pl.Series(name, values, strict=False)
                for name, values in zip(names, columns, strict=True)
            ]
        )


def _libpq_uri(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


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
    written (on SQLite, those an `OR IGNORE` did not skip). PostgreSQL uses COPY, as
    `bulk_insert` does.
    """
    if frame.height == 0:
        return 0
    if not is_sqlite(session):
        return bulk_insert(session, table, frame)
    raw = _driver_connection(session)
    _check_per_frame(session, table, frame)
    per, written = SQLITE_ROWS_PER_STATEMENT, 0
    for start in range(0, frame.height, SQLITE_APPEND_BLOCK):
        block = _sqlite_ready(frame.slice(start, SQLITE_APPEND_BLOCK))
        shared = _shared_values(block)
        once = list(shared.values())
        grouped, rest = multi_row_params(block.drop(list(shared)), per)
        for params, rows in ((grouped, per), (rest, 1)):
            if params:
                sql = _values_sql(verb, table, block.columns, list(shared), rows)
                written += raw.executemany(sql, [once + values for values in params]).rowcount
    found = session.info.get(_FOUND_KEYS)
    if found is not None and verb == "INSERT" and "id" in frame.columns:
        found.add(raw, table, frame["id"].unique().sort())  # new rows, parents of later ones
    return int(written)


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


def utc_text(moment: datetime) -> str:
    """Formats an aware time as SQLite stores it (UTC text)."""
    return moment.astimezone(UTC).strftime(SQLITE_TIME_FORMAT)


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
