"""Writes profiles (and a new model fit) back to the store in one transaction.

On a SQLite file, a refresh's many profiles are written by one of its child processes
through ADBC (`tidings.childwrites.replace_rows_in_child`), which takes about a third of the CPU
that binding a million rows of some forty values through Python's sqlite3 takes. Otherwise
the rows go in through the engine's own connection (`tidings.bulk.bulk_store`): executemany on
SQLite, COPY on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.bulk import bulk_store, sqlite_values
from tidings.childwrites import CHILD_WRITE_MIN_ROWS, CHILD_WRITE_ROWS, replace_rows_in_child
from tidings.profiles.compute import PROFILE_COLUMNS
from tidings.scans import SqliteChildren

UTC_TIME = pl.Datetime("us", "UTC")
JSON_COLUMNS = ("top_categories", "replenishment", "tags")
WRITE_ROWS = 100_000  # profiles per executemany or COPY


def write_back(
    *,
    engine: Engine,
    profiles: pl.DataFrame,
    fit_row: pl.DataFrame | None,
    children: SqliteChildren | None = None,
) -> int:
    """Replaces every profile with `profiles` and appends `fit_row`; returns profiles written.

    `children` (a SQLite file's, from `tidings.scans.sqlite_children`) write many profiles.
    """
    computed_at = clock.now()
    fits = (
        fit_row.with_columns(created_at=pl.lit(computed_at, dtype=UTC_TIME))
        if (fit_row is not None)
        else None
    )
    if children is not None and profiles.height >= CHILD_WRITE_MIN_ROWS:
        appended = {"model_fits": sqlite_values(fits)} if fits is not None else {}
        # A slice at a time, so that the child inserts one while the next is encoded.
        parts = (
            sqlite_values(_encoded(part, computed_at))
            for part in profiles.iter_slices(CHILD_WRITE_ROWS)
        )
        return replace_rows_in_child(
            children, table="profiles", parts=parts, rows=profiles.height, appended=appended
        )
    encoded = _encoded(profiles, computed_at)
    with bulk_store(engine) as store:
        if fits is not None:
            store.ingest("model_fits", fits)
        store.execute("DELETE FROM profiles")
        # In slices, so that only one slice's rows exist as Python values at a time.
        written = sum(store.ingest("profiles", part) for part in encoded.iter_slices(WRITE_ROWS))
        store.commit()
    return written


def _encoded(profiles: pl.DataFrame, computed_at: datetime) -> pl.DataFrame:
    """The profile columns as stored: lists as JSON text, NaN as null, with `computed_at`."""
    return profiles.select(PROFILE_COLUMNS).with_columns(
        *(_json_text(name) for name in JSON_COLUMNS),
        pl.col(pl.Float64).fill_nan(None),
        computed_at=pl.lit(computed_at, dtype=UTC_TIME),
    )


def _json_text(name: str) -> pl.Expr:
    """A list column as JSON text (null stays null), escaping done by Polars' JSON writer."""
    prefix = len(f'{{"{name}":')
    wrapped = pl.struct(pl.col(name)).struct.json_encode()
    text = wrapped.str.slice(prefix, wrapped.str.len_chars() - prefix - 1)
    return pl.when(pl.col(name).is_null()).then(None).otherwise(text).alias(name)
