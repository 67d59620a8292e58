"""The store: engine and session factory, the declarative Base, and reading in bulk.

Rows move in bulk as Polars frames. In this process SQLite is only opened through Python's
own sqlite3 (a second SQLite library in the process would break the file locks of the
first); big SQLite tables are read by child processes through ADBC
(`tidings.scans.read_tables_in_children`). On PostgreSQL reads go through ADBC straight into Arrow.
Writes in bulk (`tidings.bulk`) go through the session's own connection (executemany on
SQLite, COPY on PostgreSQL) so that they join the caller's transaction.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

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


def utc_text(moment: datetime) -> str:
    """Formats an aware time as SQLite stores it (UTC text)."""
    return moment.astimezone(UTC).strftime(SQLITE_TIME_FORMAT)
