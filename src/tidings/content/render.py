"""Rendering a parsed template: one Polars expression for an audience, or one member's preview.

Both paths follow the same rules (see template.py) and give the identical text: the bulk
path compiles the template to `pl.concat_str` of literals and formatted columns, with no
Python call per member; `render_one` applies the same formats to a dict of values.
`render_filled` also hands back what each placeholder showed, so that length and word checks
need not read the template's literal text once per member.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

import polars as pl

from tidings.config import get_settings
from tidings.content.template import (
    BLANK_CHARS,
    COMPOUND_SURNAMES,
    DATE_FORMATS,
    DEFAULT_DATE_FORMAT,
    DERIVED_COLUMNS,
    HAN_CLASS,
    NUMBER_FORMATS,
    SALUTATIONS,
    TIER_NAMES,
    Literal,
    Placeholder,
    Template,
    TemplateError,
)
from tidings.notifications import preference_tokens

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
SKIP_PREFIX = "missing_field:"
INT64_GROUPS = 7  # groups of three digits in the largest 64-bit integer
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


def _thousands(number: pl.Expr, *, signed: bool) -> pl.Expr:
    """A whole number grouped by thousands (`-12,345`), joined from its groups of three digits."""
    number = number.cast(pl.Int64 if signed else pl.UInt64)
    negative = number < 0 if signed else pl.lit(False)
    # -(n + 1) + 1 is the size of the smallest Int64 too, where -n would overflow.
    size = pl.when(negative).then((-(number + 1)).cast(pl.UInt64) + 1).otherwise(number)
    size = size.cast(pl.UInt64)
    top = INT64_GROUPS - 1
    pieces = []
    for group in range(top, -1, -1):
        digits = (size // 1000**group % 1000).cast(pl.String)
        if group < top:  # a group after the first keeps its zeros: 1,005
            digits = pl.when(size < 1000 ** (group + 1)).then(digits).otherwise(digits.str.zfill(3))
        if group:
            digits = pl.when(size >= 1000**group).then(pl.concat_str(digits, pl.lit(",")))
        pieces.append(digits)
    # Nulls ignored, for the groups a number lacks; a missing number stays missing.
    grouped = pl.when(size.is_not_null()).then(pl.concat_str(pieces, ignore_nulls=True))
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
        if fmt == ",":
            return _thousands(column, signed=dtype.is_signed_integer())
        return column.cast(pl.String)
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


def _preference_link_expr() -> pl.Expr:
    """Each member's own preference page link, signed today (`{preference_link}`)."""
    return preference_tokens.link_expr(
        pl.col("member_id"), preference_tokens.link_signing(get_settings())
    )


def _preference_link_value(values: Mapping[str, object]) -> str | None:
    """One member's link; a value given for it (a preview's sample) is shown as it is."""
    given, member_id = values.get("preference_link"), values.get("member_id")
    if isinstance(given, str):
        return given
    if not isinstance(member_id, int) or isinstance(member_id, bool):
        return None
    return preference_tokens.link_for(member_id, preference_tokens.link_signing(get_settings()))


def _value_expr(placeholder: Placeholder, schema: pl.Schema) -> pl.Expr:
    if placeholder.field in DERIVED_COLUMNS and placeholder.format is not None:
        raise _type_error(placeholder, "text")
    if placeholder.field == "preference_link":
        return _preference_link_expr()
    if placeholder.field == "surname":
        return _surname_expr()
    if placeholder.field == "tier":
        tier = pl.col("tier").cast(pl.String)
        return tier.replace_strict(TIER_NAMES, default=None, return_dtype=pl.String)
    return _column_expr(placeholder, schema[placeholder.columns[0]])


def _can_be_blank(placeholder: Placeholder, schema: pl.Schema) -> bool:
    if placeholder.field in DERIVED_COLUMNS:  # a salutation or a tier's name, or null
        return False
    dtype = schema[placeholder.columns[0]]
    return not (dtype.is_integer() or isinstance(dtype, pl.Date | pl.Datetime))


def value_column(index: int) -> str:
    """Returns the name of the column holding what placeholder `index` shows."""
    return f"_tidings_value_{index}"


def _shown(placeholder: Placeholder, schema: pl.Schema) -> pl.Expr:
    """What a placeholder shows: its value, else its fallback, else null (the member is skipped)."""
    value = _value_expr(placeholder, schema)
    fallback = placeholder.fallback
    if not _can_be_blank(placeholder, schema):  # missing exactly when null
        return value if fallback is None else value.fill_null(pl.lit(fallback))
    missing = value.is_null() | (value.str.strip_chars(BLANK_CHARS).str.len_bytes() == 0)
    return pl.when(missing).then(pl.lit(fallback, dtype=pl.String)).otherwise(value)


def _compile(template: Template, *, schema: pl.Schema) -> list[pl.Expr]:
    """What each placeholder shows, in order."""
    for piece in template.placeholders:
        for column in piece.columns:
            if column not in schema:
                raise TemplateError(
                    f"field '{piece.field}' needs the column '{column}', which the audience lacks",
                    position=piece.position,
                )
    return [_shown(piece, schema) for piece in template.placeholders]


def _skip_reason(template: Template, values: list[pl.Expr]) -> pl.Expr:
    """The first placeholder without a fallback that shows nothing, as a skip reason."""
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    pairs = list(zip(template.placeholders, values, strict=True))
    for piece, value in reversed(pairs):
        if piece.fallback is None:
            reason = (
                pl.when(value.is_null()).then(pl.lit(SKIP_PREFIX + piece.field)).otherwise(reason)
            )
    return reason


def _join(template: Template, values: list[pl.Expr]) -> pl.Expr:
    """The text: the template's literals and `values` (one per placeholder) in order."""
    shown = iter(values)
    pieces = [
        pl.lit(piece.text, dtype=pl.String) if isinstance(piece, Literal) else next(shown)
        for piece in template.pieces
    ]
    return pl.concat_str(pieces, ignore_nulls=False) if pieces else pl.lit("", dtype=pl.String)


def render_expressions(template: Template, *, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """Compiles `template` for frames of `schema`: expressions for the text and skip reason."""
    values = _compile(template, schema=schema)
    return _join(template, values), _skip_reason(template, values)


def _rendered(template: Template, frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    values = _compile(template, schema=schema)
    names = [value_column(index) for index in range(len(values))]
    # Each value is formatted once; the text and the reason are read from the values.
    columns = [pl.col(name) for name in names]
    text, reason = _join(template, columns), _skip_reason(template, columns)
    aliased = [value.alias(name) for value, name in zip(values, names, strict=True)]
    return frame.with_columns(aliased).with_columns(text=text, skip_reason=reason)


def render(template: Template, frame: Frame) -> Frame:
    """Adds `text` (null when skipped) and `skip_reason` to an audience frame."""
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    names = [value_column(i) for i in range(len(template.placeholders))]
    rendered = _rendered(template, frame.lazy(), schema).drop(names)
    return rendered if isinstance(frame, pl.LazyFrame) else rendered.collect()


@dataclass(frozen=True)
class Filled:
    """The values each member's placeholders showed, beside the template they filled.

    Length and lint checks given this look at the template's literal text once and at the
    values per member (`measure(..., filled=)`, `lint_messages(..., filled=)`).
    """

    template: Template
    values: pl.DataFrame  # column value_column(i): what placeholder i shows; rows as the texts

    def values_for(self, texts: pl.Series) -> pl.DataFrame:
        """Returns the values, checking that they are as many rows as `texts`."""
        if self.values.width and self.values.height != texts.len():
            raise ValueError(
                f"the filled values hold {self.values.height} rows for {texts.len()} texts; "
                "give the values rendered together with these texts"
            )
        return self.values


def render_filled(template: Template, frame: pl.DataFrame) -> tuple[pl.DataFrame, Filled]:
    """Renders like `render` and also returns what each placeholder showed, for the checks."""
    names = [value_column(i) for i in range(len(template.placeholders))]
    rendered = _rendered(template, frame.lazy(), frame.schema).collect()
    return rendered.drop(names), Filled(template=template, values=rendered.select(names))


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
    if placeholder.field in DERIVED_COLUMNS and placeholder.format is not None:
        raise _type_error(placeholder, "text")
    if placeholder.field == "preference_link":
        return _preference_link_value(values)
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
