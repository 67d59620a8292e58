"""Rendering a parsed template: one Polars expression for an audience, or one member's preview.

Both paths follow the same rules (see template.py) and give the identical text: the bulk
path compiles the template to `pl.concat_str` of literals and formatted columns, with no
Python call per member; `render_one` applies the same formats to a dict of values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

import polars as pl

from tidings.content.template import (
    BLANK_CHARS,
    COMPOUND_SURNAMES,
    DATE_FORMATS,
    DEFAULT_DATE_FORMAT,
    HAN_CLASS,
    NUMBER_FORMATS,
    SALUTATIONS,
    TIER_NAMES,
    Literal,
    Placeholder,
    Template,
    TemplateError,
)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
SKIP_PREFIX = "missing_field:"
INT64_GROUPS = 7  # groups of three digits in the longest 64-bit integer
_HAN_START = f"^{HAN_CLASS}"
_HAN_PATTERN = re.compile(_HAN_START)


@dataclass(frozen=True)
class Rendering:
    """One member's text, or why there is none."""

    text: str | None
    skip_reason: str | None


def _type_error(placeholder: Placeholder, kind: str) -> TemplateError:
    shown = f"{{{placeholder.field}:{placeholder.format}}}"
    if placeholder.format is None:
        message = f"field '{placeholder.field}' holds {kind}; templates show text, "
        message += "whole numbers and dates"
    else:
        message = f"'{shown}' cannot format {kind}; ',' is for whole numbers, md/ymd/iso for dates"
    return TemplateError(message, position=placeholder.position)


# Bulk: Polars expressions.


def _thousands(digits: pl.Expr) -> pl.Expr:
    negative = digits.str.starts_with("-")
    body = digits.str.strip_prefix("-")
    size = body.str.len_bytes().cast(pl.Int64)
    lead = (size - 1) % 3 + 1  # digits before the first comma
    pieces = [body.str.slice(0, lead)]
    for group in range(INT64_GROUPS - 1):
        start = lead + 3 * group
        comma_group = pl.concat_str(pl.lit(","), body.str.slice(start, 3))
        pieces.append(pl.when(size > start).then(comma_group).otherwise(pl.lit("")))
    grouped = pl.concat_str(pieces)
    return pl.when(negative).then(pl.concat_str(pl.lit("-"), grouped)).otherwise(grouped)


def _date_expr(column: pl.Expr, fmt: str) -> pl.Expr:
    month, day = column.dt.month().cast(pl.String), column.dt.day().cast(pl.String)
    if fmt == "iso":
        return column.dt.strftime("%Y-%m-%d")
    parts = [month, pl.lit("月"), day, pl.lit("日")]
    if fmt == "ymd":
        parts = [column.dt.year().cast(pl.String), pl.lit("年"), *parts]
    return pl.concat_str(parts)


def _column_expr(placeholder: Placeholder, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(placeholder.columns[0])
    fmt = placeholder.format
    if dtype.is_integer():
        if fmt in DATE_FORMATS:
            raise _type_error(placeholder, "whole numbers")
        text = column.cast(pl.String)
        return _thousands(text) if fmt == "," else text
    if isinstance(dtype, pl.Date | pl.Datetime):
        if fmt in NUMBER_FORMATS:
            raise _type_error(placeholder, "dates")
        return _date_expr(column, fmt or DEFAULT_DATE_FORMAT)
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum | pl.Null):
        if fmt is not None:
            raise _type_error(placeholder, "text")
        return column.cast(pl.String)
    raise _type_error(placeholder, f"{dtype} values")


def _surname_expr() -> pl.Expr:
    name = pl.col("name").cast(pl.String).str.strip_chars(BLANK_CHARS)
    two = name.str.head(2)
    surname = (
        pl.when(two.is_in(list(COMPOUND_SURNAMES)))
        .then(two)
        .when(name.str.contains(_HAN_START))
        .then(name.str.head(1))
    )
    salutation = (
        pl.col("gender")
        .cast(pl.String)
        .replace_strict(SALUTATIONS, default=None, return_dtype=pl.String)
    )
    return pl.concat_str(surname, salutation)


def _value_expr(placeholder: Placeholder, schema: pl.Schema) -> pl.Expr:
    if placeholder.field == "surname":
        if placeholder.format is not None:
            raise _type_error(placeholder, "text")
        return _surname_expr()
    if placeholder.field == "tier":
        if placeholder.format is not None:
            raise _type_error(placeholder, "text")
        tier = pl.col("tier").cast(pl.String)
        return tier.replace_strict(TIER_NAMES, default=None, return_dtype=pl.String)
    return _column_expr(placeholder, schema[placeholder.columns[0]])


def _missing(value: pl.Expr) -> pl.Expr:
    return value.is_null() | (value.str.strip_chars(BLANK_CHARS).str.len_bytes() == 0)


def render_expressions(template: Template, *, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """Compiles `template` for frames of `schema`: expressions for the text and skip reason."""
    pieces: list[pl.Expr] = []
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    reasons: list[tuple[pl.Expr, str]] = []
    for piece in template.pieces:
        if isinstance(piece, Literal):
            pieces.append(pl.lit(piece.text, dtype=pl.String))
            continue
        for column in piece.columns:
            if column not in schema:
                raise TemplateError(
                    f"field '{piece.field}' needs the column '{column}', which the audience lacks",
                    position=piece.position,
                )
        value = _value_expr(piece, schema)
        missing = _missing(value)
        if piece.fallback is None:
            pieces.append(pl.when(~missing).then(value))
            reasons.append((missing, SKIP_PREFIX + piece.field))
        else:
            pieces.append(pl.when(missing).then(pl.lit(piece.fallback)).otherwise(value))
    for missing, why in reversed(reasons):
        reason = pl.when(missing).then(pl.lit(why)).otherwise(reason)
    if not pieces:
        return pl.lit("", dtype=pl.String), reason
    return pl.concat_str(pieces, ignore_nulls=False), reason


def render(template: Template, frame: Frame) -> Frame:
    """Adds `text` (null when skipped) and `skip_reason` to an audience frame."""
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    text, reason = render_expressions(template, schema=schema)
    # Lazily, so that each field is formatted once however often the expressions use it.
    rendered = frame.lazy().with_columns(text=text, skip_reason=reason)
    return rendered if isinstance(frame, pl.LazyFrame) else rendered.collect()


# One member: plain Python with the same rules.


def _surname_value(values: Mapping[str, object]) -> str | None:
    name, gender = values.get("name"), values.get("gender")
    if not isinstance(name, str) or not isinstance(gender, str):
        return None
    name = name.strip(BLANK_CHARS)
    salutation = SALUTATIONS.get(gender)
    if name[:2] in COMPOUND_SURNAMES:
        surname: str | None = name[:2]
    else:
        surname = name[:1] if _is_han(name[:1]) else None
    return None if surname is None or salutation is None else surname + salutation


def _is_han(char: str) -> bool:
    return _HAN_PATTERN.match(char) is not None


def _format_date(value: date, fmt: str) -> str:
    if fmt == "iso":
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    text = f"{value.month}月{value.day}日"
    return f"{value.year}年{text}" if fmt == "ymd" else text


def _format_value(placeholder: Placeholder, value: object) -> str | None:
    fmt = placeholder.format
    if value is None:
        return None
    if isinstance(value, bool):
        raise _type_error(placeholder, "true/false values")
    if isinstance(value, int):
        if fmt in DATE_FORMATS:
            raise _type_error(placeholder, "whole numbers")
        return f"{value:,}" if fmt == "," else str(value)
    if isinstance(value, date):
        if fmt in NUMBER_FORMATS:
            raise _type_error(placeholder, "dates")
        return _format_date(value, fmt or DEFAULT_DATE_FORMAT)
    if isinstance(value, str):
        if fmt is not None:
            raise _type_error(placeholder, "text")
        return value
    raise _type_error(placeholder, f"{type(value).__name__} values")


def _placeholder_value(placeholder: Placeholder, values: Mapping[str, object]) -> str | None:
    if placeholder.field in ("surname", "tier") and placeholder.format is not None:
        raise _type_error(placeholder, "text")
    if placeholder.field == "surname":
        return _surname_value(values)
    if placeholder.field == "tier":
        tier = values.get("tier")
        return TIER_NAMES.get(tier) if isinstance(tier, str) else None
    return _format_value(placeholder, values.get(placeholder.columns[0]))


def render_one(template: Template, values: Mapping[str, object]) -> Rendering:
    """Renders `template` for one member's `values` (column -> value), as the bulk path would."""
    parts: list[str] = []
    skip_reason: str | None = None
    for piece in template.pieces:
        if isinstance(piece, Literal):
            parts.append(piece.text)
            continue
        value = _placeholder_value(piece, values)
        if value is not None and value.strip(BLANK_CHARS):
            parts.append(value)
        elif piece.fallback is not None:
            parts.append(piece.fallback)
        elif skip_reason is None:
            skip_reason = SKIP_PREFIX + piece.field
    if skip_reason is not None:
        return Rendering(text=None, skip_reason=skip_reason)
    return Rendering(text="".join(parts), skip_reason=None)
