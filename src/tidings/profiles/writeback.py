"""Writes profiles (and a new model fit) back to the store in one transaction.

On a SQLite file, a refresh's many profiles are written by one of its child processes
through ADBC (`tidings.scans.replace_rows_in_child`), which takes about a third of the CPU
that binding a million rows of some forty values through Python's sqlite3 takes. Otherwise
the rows go in through the engine's own connection (`tidings.db.bulk_store`): executemany on
SQLite, COPY on PostgreSQL.
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.db import bulk_store, sqlite_values
from tidings.profiles.compute import PROFILE_COLUMNS
from tidings.scans import CHILD_WRITE_MIN_ROWS, SqliteChildren, replace_rows_in_child

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
    encoded = profiles.select(PROFILE_COLUMNS).with_columns(
        *(_json_text(name) for name in JSON_COLUMNS),
        pl.col(pl.Float64).fill_nan(None),
        computed_at=pl.lit(clock.now(), dtype=UTC_TIME),
    )
    fits = (
        fit_row.with_columns(created_at=pl.lit(clock.now(), dtype=UTC_TIME))
        if (fit_row is not None)
        else None
    )
    if children is not None and encoded.height >= CHILD_WRITE_MIN_ROWS:
        appended = {"model_fits": sqlite_values(fits)} if fits is not None else {}
        return replace_rows_in_child(
            children, table="profiles", frame=sqlite_values(encoded), appended=appended
        )
    with bulk_store(engine) as store:
        if fits is not None:
            store.ingest("model_fits", fits)
        store.execute("DELETE FROM profiles")
        # In slices, so that only one slice's rows exist as Python values at a time.
        written = sum(store.ingest("profiles", part) for part in encoded.iter_slices(WRITE_ROWS))
        store.commit()
    return written


def _json_text(name: str) -> pl.Expr:
    """A list column as JSON text (null stays null), escaping done by Polars' JSON writer."""
    prefix = len(f'{{"{name}":')
    wrapped = pl.struct(pl.col(name)).struct.json_encode()
    text = wrapped.str.slice(prefix, wrapped.str.len_chars() - prefix - 1)
    return pl.when(pl.col(name).is_null()).then(None).otherwise(text).alias(name)
