"""Parsing text cells into values, as Polars expressions shared by every importer and the API.

Yes/no, whole numbers, yuan to cents and local times; a cell that cannot be read becomes null,
and the caller turns that null into a reason with `reasons`.

The full parsers fold many spellings with several passes over a column. Files mostly hold one
plain spelling, so `with_parsed` reads that one with a single cheap expression (the `common_*`
functions) and runs the full parser only on the rows it left null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

BLANK = " \t\r\n\u3000\xa0\ufeff"
FULL_WIDTH = {chr(ord(c) + 0xFEE0): c for c in "0123456789.,+-"}
YES = ("是", "y", "yes", "1", "true", "t", "同意", "已同意", "on", "✓")
NO = ("否", "n", "no", "0", "false", "f", "不同意", "拒绝", "off", "✗")


COMMON_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
COMMON_AMOUNT = r"^-?[0-9]{1,13}(?:\.[0-9]{1,2})?$"
COMMON_WHOLE = r"^[0-9]{1,15}$"


@dataclass(frozen=True)
class TwoStep:
    """A column parsed by a cheap expression for its common spelling, by `full` for the rest.

    Wherever `common` gives a value, `full` must give the same one.
    """

    source: str
    common: pl.Expr
    full: pl.Expr


def with_parsed(frame: pl.DataFrame, steps: Mapping[str, TwoStep]) -> pl.DataFrame:
    """Adds each parsed column: `common` for every row, `full` only where `common` gave null."""
    frame = frame.with_columns(step.common.alias(name) for name, step in steps.items())
    for name, step in steps.items():
        left = pl.col(name).is_null() & pl.col(step.source).is_not_null()
        rows = frame.select(left.arg_true()).to_series()
        if rows.len() == 0:
            continue
        column = frame.get_column(name)
        redone = frame[rows].select(step.full.cast(column.dtype).alias(name)).to_series()
        frame = frame.with_columns(column.clone().scatter(rows, redone))
    return frame


def text(name: str) -> pl.Expr:
    """A trimmed text column (full-width spaces too); empty text is null."""
    return pl.col(name).str.strip_chars(BLANK).replace("", None)


def text_fields(
    frame: pl.DataFrame, fields: tuple[str, ...], *, trimmed: bool = False
) -> pl.DataFrame:
    """Every field as text, an empty column where the input lacks it; trimmed unless it is.

    `CsvSource` batches come trimmed already; records from the API do not.
    """
    missing = [pl.lit(None, pl.String).alias(name) for name in fields if name not in frame.columns]
    frame = frame.with_columns(missing) if missing else frame
    return frame if trimmed else frame.with_columns(text(name).alias(name) for name in fields)


def yes_no(expr: pl.Expr) -> pl.Expr:
    """是/否, Y/N, 1/0, true/false, 同意 ... as a Boolean; anything else is null."""
    mapping = {**dict.fromkeys(YES, True), **dict.fromkeys(NO, False)}
    folded = expr.str.strip_chars(BLANK).str.to_lowercase()
    return folded.replace_strict(mapping, default=None, return_dtype=pl.Boolean)


def half_width(expr: pl.Expr) -> pl.Expr:
    """Full-width digits and signs typed on a Chinese keyboard ('１２３９．５') as ASCII."""
    return expr.str.replace_many(list(FULL_WIDTH), list(FULL_WIDTH.values()))


def whole_number(expr: pl.Expr) -> pl.Expr:
    """'120', '１２０', '1,200' or '120.0' as Int64; anything else is null."""
    folded = half_width(expr).str.replace_all(",", "", literal=True).str.replace(r"\.0+$", "")
    return pl.when(folded.str.contains(r"^[+-]?[0-9]{1,15}$")).then(folded.cast(pl.Int64))


def cents(expr: pl.Expr) -> pl.Expr:
    """An amount in yuan ('12.5', '¥1,299.00', '-3') as exact integer cents; else null."""
    folded = half_width(expr).str.replace_all(r"[¥￥,\s元]", "")
    parts = folded.str.extract_groups(r"^([+-]?)([0-9]{1,13})(?:\.([0-9]*?)0*)?$")
    fraction = parts.struct.field("3").fill_null("")
    whole = parts.struct.field("2").cast(pl.Int64) * 100 + fraction.str.pad_end(2, "0").cast(
        pl.Int64, strict=False
    )
    sign = pl.when(parts.struct.field("1") == "-").then(-1).otherwise(1)
    return pl.when(fraction.str.len_chars() <= 2).then(whole * sign)


def common_whole_number(expr: pl.Expr) -> pl.Expr:
    """Plain ASCII digits as Int64, the way `whole_number` reads them; else null."""
    return pl.when(expr.str.contains(COMMON_WHOLE)).then(expr.cast(pl.Int64, strict=False))


def common_cents(expr: pl.Expr) -> pl.Expr:
    """A plain amount ('12', '-3.5', '1299.00') as cents, the way `cents` reads it; else null.

    Thirteen digits and two decimals fit a float exactly enough for rounding to give the cents.
    """
    yuan = expr.cast(pl.Float64, strict=False)
    return pl.when(expr.str.contains(COMMON_AMOUNT)).then((yuan * 100).round().cast(pl.Int64))


def common_local_time(expr: pl.Expr, timezone: str) -> pl.Expr:
    """'2024-05-01 09:30:00' local to `timezone`, as UTC, as `local_time` reads it; else null."""
    naive = expr.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return pl.when(expr.str.contains(COMMON_TIME)).then(local.dt.convert_time_zone("UTC"))


def local_time(expr: pl.Expr, timezone: str) -> pl.Expr:
    """A time as UTC: with an offset it is taken as given, without one as local to `timezone`."""
    folded = (
        expr.str.replace_all("/", "-", literal=True)
        .str.replace("T", " ", literal=True)
        .str.replace(r"([0-9])\s*([+-][0-9][0-9]):?([0-9][0-9])$", "$1$2$3")
        .str.replace(r"Z$", "+0000")
    )
    with_offset = pl.coalesce(
        folded.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
        for f in ("%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z")
    )
    naive = pl.coalesce(
        folded.str.to_datetime(f, strict=False, time_unit="us")
        for f in ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
    )
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return pl.coalesce(with_offset, local.dt.convert_time_zone("UTC"))


def reasons(*checks: pl.Expr) -> pl.Expr:
    """Joins the reasons that apply to a row with '; ' (null when none applies)."""
    return pl.concat_str(list(checks), separator="; ", ignore_nulls=True).replace("", None)
