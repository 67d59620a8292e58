"""Date comparisons of the segment language: days against days, times by their local day.

A time field compared with a date compares the day it falls on in the brand's timezone.
Against a constant date that becomes a comparison with the UTC instant the day begins, so
the column is never converted; only two fields compared with each other are converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import polars as pl

from tidings.segments.fields import FIELDS, FieldType
from tidings.segments.tree import DateValue, FieldRef, Shift, Today, Value

if TYPE_CHECKING:
    from tidings.segments.compiler import Context

_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_METHODS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


@dataclass(frozen=True)
class _Day:
    """A date value reduced to a constant day, or a field moved by a number of days."""

    constant: date | None = None
    field: str | None = None
    offset_days: int = 0


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Returns the UTC instant a local day begins."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def compare_dates(op: str, left: Value, right: Value, context: Context) -> pl.Expr:
    """Compiles `left op right` for two date values (may raise OverflowError)."""
    lhs, rhs = _reduce(left, context), _reduce(right, context)
    if lhs.constant is not None and rhs.constant is not None:
        return pl.lit(bool(getattr(lhs.constant, f"__{_METHODS[op]}__")(rhs.constant)))
    if lhs.constant is not None:
        lhs, rhs, op = rhs, lhs, _FLIPPED[op]
    assert lhs.field is not None
    if rhs.constant is None:
        assert rhs.field is not None
        return getattr(_moved_day(lhs, context), _METHODS[op])(_moved_day(rhs, context))
    # field + offset OP day  <=>  field OP day - offset
    day = rhs.constant - timedelta(days=lhs.offset_days)
    column = pl.col(lhs.field)
    if FIELDS[lhs.field].type is FieldType.DATE:
        return getattr(column, _METHODS[op])(pl.lit(day))
    return _time_against_day(column, op, day, context.timezone)


def _time_against_day(column: pl.Expr, op: str, day: date, zone: ZoneInfo) -> pl.Expr:
    start, end = pl.lit(day_start(day, zone)), pl.lit(day_start(day + timedelta(days=1), zone))
    within = (column >= start) & (column < end)
    bounds = {
        "<": column < start,
        "<=": column < end,
        ">": column >= end,
        ">=": column >= start,
        "==": within,
        "!=": ~within,
    }
    return bounds[op]


def _moved_day(day: _Day, context: Context) -> pl.Expr:
    assert day.field is not None
    column = pl.col(day.field)
    if FIELDS[day.field].type is FieldType.DATETIME:
        column = column.dt.convert_time_zone(str(context.timezone)).dt.date()
    if day.offset_days:
        column = column + pl.duration(days=day.offset_days)
    return column


def _reduce(value: Value, context: Context) -> _Day:
    match value:
        case DateValue(value=day):
            return _Day(constant=day)
        case Today():
            return _Day(constant=context.today)
        case FieldRef(name=name):
            return _Day(field=name)
        case Shift(base=base, sign=sign, by=by):
            inner = _reduce(base, context)
            days = by.days if sign == "+" else -by.days
            if inner.constant is not None:
                return _Day(constant=inner.constant + timedelta(days=days))
            return _Day(field=inner.field, offset_days=inner.offset_days + days)
    raise TypeError(f"not a date value: {value!r}")
