"""Cleaning member rows, shared by the CSV import and the batch API.

Rows without a usable phone are kept for analytics when they carry a member code: the phone
is stored as NULL with `phone_status` invalid, landline or missing, and the rejects file gets
a line saying "kept without phone: <why>" so that the bad phones can be fixed at the source.
Those lines are warnings: they are not counted as rejected.
"""

from __future__ import annotations

import polars as pl

from tidings import clock
from tidings.imports import PERSON_ALIASES, local_time, reasons, whole_number, yes_no
from tidings.imports.parsing import (
    BLANK,
    TwoStep,
    common_local_time,
    common_whole_number,
    text_fields,
    with_parsed,
)
from tidings.members.phone import normalise_phones

MEMBER_ALIASES: dict[str, tuple[str, ...]] = {
    **PERSON_ALIASES,
    "name": ("name", "full_name", "member_name", "姓名", "会员姓名", "名字", "客户姓名"),
    "gender": ("gender", "sex", "性别"),
    "birthday": ("birthday", "birth_date", "date_of_birth", "dob", "生日", "出生日期"),
    "tier": ("tier", "level", "member_level", "会员等级", "等级", "会员级别", "级别"),
    "points": ("points", "积分", "当前积分", "可用积分", "会员积分"),
    "registered_at": ("registered_at", "registration_time", "joined_at", "注册时间", "入会时间",
                      "注册日期", "开卡时间"),
    "consent": ("consent", "marketing_consent", "opt_in", "是否同意营销", "营销同意", "同意营销",
                "是否接收营销短信"),
}  # fmt: skip
MEMBER_FIELDS = tuple(MEMBER_ALIASES)
MAX_LENGTHS = {"member_code": 64, "name": 100, "tier": 32}  # characters, as the table holds
MALE = ("男", "m", "male", "1", "先生", "男士")
FEMALE = ("女", "f", "female", "2", "女士", "小姐")
UNKNOWN_GENDER = ("未知", "保密", "u", "unknown", "0", "其他", "-", "n/a")
EARLIEST_BIRTH_YEAR = 1900
LUNAR_MARKERS = r"农历|阴历|^[Ll]"


def gender(expr: pl.Expr) -> pl.Expr:
    """男/女/M/F/male/female/1/2/先生/女士 as 'M' or 'F'; unknown markers as null."""
    mapping = {**dict.fromkeys(MALE, "M"), **dict.fromkeys(FEMALE, "F")}
    mapping.update(dict.fromkeys(UNKNOWN_GENDER, ""))
    folded = expr.str.strip_chars(BLANK).str.to_lowercase()
    mapped = folded.replace_strict(mapping, default="?", return_dtype=pl.String)
    return pl.when(folded.is_not_null()).then(mapped)


def birthday(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(date, is_lunar) from 1990-01-02, 1990/1/2, 19900102, 1990年1月2日, 1990.1.2, 农历..."""
    lunar = expr.str.contains(LUNAR_MARKERS)
    body = (
        expr.str.replace_all(LUNAR_MARKERS, "")
        .str.strip_chars(BLANK)
        .str.replace(r"\s+\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "")
        .str.replace(r"^(\d{4})(\d{2})(\d{2})$", "$1-$2-$3")
        .str.replace_all(r"[年月/.]", "-")
        .str.replace(r"[日号]$", "")
    )
    parts = body.str.extract_groups(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
    padded = pl.concat_str(
        parts.struct.field("1"),
        parts.struct.field("2").str.pad_start(2, "0"),
        parts.struct.field("3").str.pad_start(2, "0"),
        separator="-",
    )
    return padded.str.to_date("%Y-%m-%d", strict=False), lunar


COMMON_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def common_birthday(expr: pl.Expr) -> pl.Expr:
    """'1990-01-02' as a date, the way `birthday` reads it; anything else is null."""
    return pl.when(expr.str.contains(COMMON_DATE)).then(expr.str.to_date("%Y-%m-%d", strict=False))


def member_parsers(timezone: str) -> dict[str, TwoStep]:
    """How the birthday, points and registration time of a member row are read."""
    col = pl.col
    return {
        "_birthday": TwoStep(
            "birthday", common_birthday(col("birthday")), birthday(col("birthday"))[0]
        ),
        "_points": TwoStep(
            "points", common_whole_number(col("points")), whole_number(col("points"))
        ),
        "_registered_at": TwoStep(
            "registered_at",
            common_local_time(col("registered_at"), timezone),
            local_time(col("registered_at"), timezone),
        ),
    }


def clean_members(
    frame: pl.DataFrame, *, region: str, timezone: str, trimmed: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cleans member rows; returns (good rows, problems as `line`, `reason`, `rejected`)."""
    frame = normalise_phones(text_fields(frame, MEMBER_FIELDS, trimmed=trimmed), region=region)
    today = clock.now().date()
    frame = frame.with_columns(
        gender(pl.col("gender")).alias("_gender"),
        birthday(pl.col("birthday"))[1].fill_null(False).alias("birthday_is_lunar"),
        yes_no(pl.col("consent")).alias("_consent"),
    )
    frame = with_parsed(frame, member_parsers(timezone))
    bad_birthday = pl.col("birthday").is_not_null() & (
        pl.col("_birthday").is_null()
        | (pl.col("_birthday").dt.year() < EARLIEST_BIRTH_YEAR)
        | (pl.col("_birthday") > pl.lit(today))
    )
    problem = reasons(
        pl.when(pl.col("phone_e164").is_null() & pl.col("member_code").is_null()).then(
            pl.coalesce("phone_problem", pl.lit("no phone and no member code"))
        ),
        pl.when(bad_birthday).then(pl.format("birthday '{}' is not a date", "birthday")),
        pl.when(pl.col("_gender") == "?").then(
            pl.format("gender '{}' is not one of 男/女/M/F/1/2", "gender")
        ),
        pl.when(pl.col("points").is_not_null() & pl.col("_points").is_null()).then(
            pl.format("points '{}' is not a whole number", "points")
        ),
        pl.when(pl.col("registered_at").is_not_null() & pl.col("_registered_at").is_null()).then(
            pl.format("registered_at '{}' is not a date and time", "registered_at")
        ),
        pl.when(pl.col("consent").is_not_null() & pl.col("_consent").is_null()).then(
            pl.format("consent '{}' is not one of 是/否/Y/N/1/0/true/false", "consent")
        ),
        *(
            pl.when(pl.col(name).str.len_chars() > limit).then(
                pl.lit(f"{name} is longer than {limit} characters")
            )
            for name, limit in MAX_LENGTHS.items()
        ),
    )
    frame = frame.with_columns(problem.alias("_reason"))
    rejected = frame.filter(pl.col("_reason").is_not_null()).select(
        "line", pl.col("_reason").alias("reason"), pl.lit(True).alias("rejected")
    )
    good = frame.filter(pl.col("_reason").is_null())
    warned = good.filter(pl.col("phone_problem").is_not_null()).select(
        "line",
        pl.format("kept without phone: {}", "phone_problem").alias("reason"),
        pl.lit(False).alias("rejected"),
    )
    good = good.select(
        "line",
        pl.col("member_code").alias("code"),
        pl.col("phone_e164").alias("phone"),
        "phone_status",
        "name",
        pl.col("_gender").replace("", None).alias("gender"),
        pl.col("_birthday").alias("birthday"),
        pl.when(pl.col("_birthday").is_not_null()).then(pl.col("birthday_is_lunar")),
        pl.col("store_code").alias("store_ref"),
        "tier",
        pl.col("_points").alias("points"),
        pl.col("_registered_at").alias("registered_at"),
        pl.col("_consent").alias("consent"),
    )
    return good, pl.concat([rejected, warned])
