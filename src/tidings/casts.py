"""Frames read from a store, cast to the types asked for. Apart from the store helpers so that
the child processes that read tables (`tidings.scans`) use it without importing SQLAlchemy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cast_frame(frame: pl.DataFrame, schema: dict[str, Any]) -> pl.DataFrame:
    """Casts a frame read from either store to `schema` (SQLite keeps times as text)."""
    if frame.height == 0 and frame.width == 0:
        return pl.DataFrame(schema=schema)
    casts = []
    for name, dtype in schema.items():
        column = pl.col(name)
        current = frame.schema[name]
        if isinstance(dtype, pl.Datetime) and current == pl.String:
            casts.append(
                column.str.to_datetime(time_zone="UTC", strict=False, time_unit="us").alias(name)
            )
        elif isinstance(dtype, pl.Datetime) and isinstance(current, pl.Datetime):
            casts.append(column.dt.convert_time_zone("UTC").alias(name))
        elif dtype == pl.Date and current == pl.String:
            casts.append(column.str.to_date(strict=False).alias(name))
        elif dtype == pl.Boolean and current != pl.Boolean:
            casts.append(column.cast(pl.Int64).cast(pl.Boolean).alias(name))
        else:
            casts.append(column.cast(dtype).alias(name))
    return frame.with_columns(casts)


def utc_series(name: str, moments: Sequence[datetime | None]) -> pl.Series:
    """Times as a UTC series (a time without a zone is taken as UTC).

    Counted from the epoch in Python and cast once: Polars converts each aware datetime
    through its zone, some five microseconds a value, which the dispatcher's receipts paid
    twice a message.
    """
    micros = [
        None if moment is None else (_aware(moment) - _EPOCH) // _MICROSECOND for moment in moments
    ]
    return pl.Series(name, micros, dtype=pl.Int64).cast(UTC_TIME)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
