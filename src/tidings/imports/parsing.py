"""Parsing text cells into values, as Polars expressions shared by every importer and the API.

Yes/no, whole numbers, yuan to cents and local times; a cell that cannot be read becomes null,
and the caller turns that null into a reason with `reasons`.
"""

from __future__ import annotations

import polars as pl

BLANK = " \t\r\n\u3000\xa0\ufeff"
FULL_WIDTH = {chr(ord(c) + 0xFEE0): c for c in "0123456789.,+-"}
YES = ("是", "y", "yes", "1", "true", "t", "同意", "已同意", "on", "✓")
NO = ("否", "n", "no", "0", "false", "f", "不同意", "拒绝", "off", "✗")


def text(name: str) -> pl.Expr:
    """A trimmed text column (full-width spaces too); empty text is null."""
    return pl.col(name).str.strip_chars(BLANK).replace("", None)


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
