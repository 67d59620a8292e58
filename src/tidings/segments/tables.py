"""Reading the tables an audience is made from, in bulk, and bringing their columns to
the types the audience frame holds (SQLite keeps times, dates and lists as text).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl
from sqlalchemy import Engine

from tidings.db import read_frame
from tidings.scans import TableScan, read_tables_in_children

UTC_TIME = pl.Datetime("us", "UTC")
# Types ADBC reads from SQLite as they are, a null first or not (booleans are integers).
_ADBC_TYPES = (pl.Int64, pl.Boolean)


def with_types(frame: pl.DataFrame, columns: dict[str, Any]) -> pl.DataFrame:
    """Adds the expected columns a frame lacks, as nulls, and brings the rest to their type."""
    exprs = []
    for name, dtype in columns.items():
        if name not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif frame.schema[name] == pl.String:
            exprs.append(from_text(pl.col(name).replace("", None), dtype).alias(name))
        elif isinstance(frame.schema[name], pl.Datetime) and dtype == UTC_TIME:
            column = pl.col(name)
            if frame.schema[name].time_zone is None:  # type: ignore[attr-defined]
                column = column.dt.replace_time_zone("UTC")
            exprs.append(column.dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def from_text(column: pl.Expr, dtype: Any) -> pl.Expr:
    """A column read as text, parsed to `dtype` (a value that does not parse is null)."""
    if dtype == UTC_TIME:
        return column.str.to_datetime(time_zone="UTC", time_unit="us", strict=False)
    if dtype == pl.Date:
        return column.str.to_date(strict=False)
    if dtype == pl.List(pl.String):
        return column.str.json_decode(pl.List(pl.String))
    if dtype == pl.Boolean:
        return column.cast(pl.Int64).cast(pl.Boolean)
    return column.cast(dtype)


def read_table(
    engine: Engine, table: str, columns: dict[str, Any], *, where: str | None = None
) -> pl.DataFrame:
    """Reads the named columns of a table in bulk (`tidings.db.read_frame`) and brings them
    to their types (SQLite keeps times and dates as text)."""
    sql = f"SELECT {_select_list(columns)} FROM {table}" + (f" WHERE {where}" if where else "")
    return with_types(read_frame(engine, sql), columns)


def _select_list(columns: dict[str, Any], *, as_text: Collection[str] = ()) -> str:
    """The columns to select; tags, and the `as_text` columns, as text ('' for null)."""
    return ", ".join(
        f"COALESCE(CAST({name} AS TEXT), '') AS {name}"
        if name == "tags" or name in as_text
        else name
        for name in columns
    )


def read_tables(
    engine: Engine, reads: dict[str, tuple[dict[str, Any], str]]
) -> dict[str, pl.DataFrame]:
    """Reads each table's columns (none asked: not read), brought to their types.

    A SQLite file's big tables are read by child processes through ADBC
    (`tidings.scans.read_tables_in_children`): Python's sqlite3 cost 1.5 to 2.2 s of CPU a
    million rows of the members, profiles and consent a campaign reads. ADBC takes a
    column's type from its first rows and refuses a later value of another type, so text,
    dates and times are read as text ('' for null, which `with_types` makes null again, as
    it does any empty text), and a table with a real-number column is read here: its text
    would round it. On PostgreSQL the tables are read side by side, each by a connection.
    """
    wanted = {table: read for table, read in reads.items() if read[0]}
    sqlite = engine.dialect.name == "sqlite"
    scans = {table: _scan(table, *read, sqlite=sqlite) for table, read in wanted.items()}
    frames = read_tables_in_children(
        engine, {table: scan for table, scan in scans.items() if scan is not None}
    )
    return {
        table: with_types(frames[table], columns)
        if table in frames
        else read_table(engine, table, columns, where=where)
        for table, (columns, where) in wanted.items()
    }


def _scan(table: str, columns: dict[str, Any], where: str, *, sqlite: bool) -> TableScan | None:
    """A table's read; on SQLite text where ADBC needs it, or None: a real number is wanted."""
    if not sqlite:
        return TableScan(table=table, columns=_select_list(columns), where=where, schema={})
    if any(dtype == pl.Float64 for dtype in columns.values()):
        return None
    text = [name for name, dtype in columns.items() if dtype not in _ADBC_TYPES]
    schema = {name: pl.String if name in text else dtype for name, dtype in columns.items()}
    columns_sql = _select_list(columns, as_text=text)
    return TableScan(table=table, columns=columns_sql, where=where, schema=schema)
