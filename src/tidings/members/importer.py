"""Cleaning and merging member rows, shared by the CSV import and the batch API.

Both paths hand a frame of text columns (one per field, plus `line`) to `clean_members`,
then `merge_duplicates`, then `service.upsert_members`.

How duplicates merge. Rows that share a phone (after normalisation to E.164) or a member
code are one member, also transitively (A and B share a phone, B and C a code: one member),
within the file and against the members already in the store:
- Rows are ordered oldest to newest by `registered_at`, then by line; a row without a
  `registered_at` counts as current, newer than any dated row.
- For every field the newest non-empty value wins; an empty cell never erases a value.
  Points are taken from the newest row that has them, never summed.
- Against the store, the file's merged values win over the stored ones when the file's
  newest row is at least as new as the stored `registered_at` (or either has none);
  otherwise the stored values win and the file only fills what the store lacks.
- A row whose phone belongs to one stored member and whose code belongs to another is
  rejected: which of the two it means is for a person to decide.

Rows without a usable phone are kept for analytics when they carry a member code: the phone
is stored as NULL with `phone_status` invalid, landline or missing, and the rejects file gets
a line saying "kept without phone: <why>" so that the bad phones can be fixed at the source.
Those lines are warnings: they are not counted as rejected.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.config import get_settings
from tidings.db import BulkStore, bulk_store
from tidings.imports import (
    BLANK,
    PERSON_ALIASES,
    CsvSource,
    ImportResult,
    RejectsWriter,
    local_time,
    reasons,
    text,
    whole_number,
    yes_no,
)
from tidings.members import service
from tidings.members.phone import normalise_phones
from tidings.members.service import UTC_TIME

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


def with_all_fields(frame: pl.DataFrame, fields: tuple[str, ...]) -> pl.DataFrame:
    """Adds the fields the input lacks as empty text columns."""
    missing = [pl.lit(None, pl.String).alias(name) for name in fields if name not in frame.columns]
    return frame.with_columns(missing) if missing else frame


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


def clean_members(
    frame: pl.DataFrame, *, region: str, timezone: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cleans member rows; returns (good rows, problems as `line`, `reason`, `rejected`)."""
    frame = with_all_fields(frame, MEMBER_FIELDS).with_columns(
        text(name).alias(name) for name in MEMBER_FIELDS
    )
    frame = normalise_phones(frame, "phone", region=region)
    born, lunar = birthday(pl.col("birthday"))
    today = clock.now().date()
    frame = frame.with_columns(
        gender(pl.col("gender")).alias("_gender"),
        born.alias("_birthday"),
        lunar.fill_null(False).alias("birthday_is_lunar"),
        whole_number(pl.col("points")).alias("_points"),
        local_time(pl.col("registered_at"), timezone).alias("_registered_at"),
        yes_no(pl.col("consent")).alias("_consent"),
    )
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


def _components(frame: pl.DataFrame) -> pl.Series:
    """Group number of each row: rows sharing a phone or a code, transitively, share one."""
    groups = frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("group"), "phone", "code")
    while True:
        spread = groups.with_columns(
            pl.min_horizontal(
                "group",
                *(
                    pl.when(pl.col(key).is_not_null()).then(pl.col("group").min().over(key))
                    for key in ("phone", "code")
                ),
            ).alias("group")
        )
        if spread["group"].equals(groups["group"]):
            return spread["group"]
        groups = spread


VALUE_FIELDS = ("code", "phone", "name", "gender", "store_ref", "tier", "points", "consent")


def merge_duplicates(good: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One row per member (the rule is in the module docstring); returns it and rows merged."""
    frame = good.with_columns(_components(good).alias("group")).sort(
        "registered_at", "line", nulls_last=True
    )
    merged = frame.group_by("group").agg(
        *(pl.col(name).drop_nulls().last() for name in VALUE_FIELDS),
        pl.col("registered_at").drop_nulls().last(),
        pl.col("registered_at").last().is_null().alias("undated"),
        pl.col("birthday").drop_nulls().last(),
        pl.col("birthday_is_lunar").drop_nulls().last(),
        pl.col("phone_status").filter(pl.col("phone_status") != "missing").last(),
        pl.col("line").min().alias("line"),
        pl.col("line").alias("lines"),
    )
    merged = merged.with_columns(
        pl.when(pl.col("phone").is_not_null())
        .then(pl.lit("ok"))
        .otherwise(pl.col("phone_status").fill_null("missing"))
        .alias("phone_status"),
        pl.col("birthday_is_lunar").fill_null(False),
        pl.when(pl.col("undated")).then(None).otherwise("registered_at").alias("recency"),
    ).sort("line")
    return merged.drop("undated"), good.height - merged.height


def import_members(
    *,
    engine: Engine,
    path: Path,
    mapping: Path | None = None,
    rejects_path: Path | None = None,
    progress: bool = False,
    source: str | None = None,
) -> ImportResult:
    """Imports a member CSV: cleans, merges duplicates, upserts in batches, writes rejects."""
    settings = get_settings()
    path = Path(path)
    with CsvSource(path, aliases=MEMBER_ALIASES, mapping_path=mapping) as csv:
        csv.require(any_of=("phone", "member_code"))
        rejects = RejectsWriter(RejectsWriter.beside(path, rejects_path), csv.header)
        with bulk_store(engine) as store:
            batches = MemberBatches(store=store, source=source or path.name)
            try:
                for raw in csv.batches(settings.import_batch_rows, progress=progress):
                    problems = batches.add(csv.canonical(raw))
                    store.commit()
                    rejects.write(raw, problems.select("line", "reason"))
            finally:
                batches.result.rejects_file = rejects.close()
    return batches.result


class MemberBatches:
    """Applies member batches to the store and counts what happened across all of them."""

    def __init__(self, *, store: BulkStore, source: str) -> None:
        settings = get_settings()
        self.store, self.source = store, source
        self.region, self.timezone = settings.default_region, settings.default_timezone
        self.result = ImportResult()
        self.touched = pl.Series("member_id", [], dtype=pl.Int64)
        self.stores = service.store_refs(store=store)

    def add(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Cleans, merges and upserts one batch; returns its problems (`line`, `reason`, ...)."""
        if frame.height == 0:
            return NO_PROBLEMS
        good, problems = clean_members(frame, region=self.region, timezone=self.timezone)
        merged, merged_rows = merge_duplicates(good)
        merged = merged.rename({"group": "grp"}).with_columns(
            pl.col("store_ref")
            .replace_strict(self.stores["ref"], self.stores["store_id"], default=None)
            .cast(pl.Int64)
            .alias("store_id")
        )
        unknown_store = pl.col("store_ref").is_not_null() & pl.col("store_id").is_null()
        store_problems = _group_problems(
            merged.filter(unknown_store),
            pl.format("store '{}' is not known; import stores first", "store_ref"),
        )
        merged = merged.filter(~unknown_store)
        matched = service.match_members(store=self.store, keys=merged)
        conflicted = matched.group_by("grp").agg(pl.col("id").n_unique() > 1).filter("id")["grp"]
        conflict_problems = _group_problems(
            merged.filter(pl.col("grp").is_in(conflicted.implode())),
            pl.format(
                "phone '{}' and member code '{}' belong to two different members; fix one",
                "phone",
                "code",
            ),
        )
        merged = merged.filter(~pl.col("grp").is_in(conflicted.implode()))
        self._apply(merged, matched.unique("grp"), merged_rows)
        problems = pl.concat([problems, store_problems, conflict_problems])
        self.result.rows += frame.height
        self.result.rejected += int(problems["rejected"].sum())
        self.result.warnings += int((~problems["rejected"]).sum())
        return problems.sort("line")

    def _apply(self, merged: pl.DataFrame, matched: pl.DataFrame, merged_rows: int) -> None:
        now = clock.now()
        final = final_values(merged, matched)
        seen = pl.col("id").is_in(self.touched.implode())
        new = final.filter(pl.col("id").is_null())
        changed = final.filter(pl.col("id").is_not_null() & pl.col("changed"))
        service.insert_members(
            store=self.store,
            members=new.select(STORED_FIELDS).with_columns(
                pl.col("points").fill_null(0),
                pl.lit(now, dtype=UTC_TIME).alias("created_at"),
                pl.lit(now, dtype=UTC_TIME).alias("updated_at"),
            ),
        )
        service.update_members(
            store=self.store,
            members=changed.select("id", *STORED_FIELDS).with_columns(
                pl.col("points").fill_null(0), pl.lit(now, dtype=UTC_TIME).alias("updated_at")
            ),
        )
        self.result.inserted += new.height
        self.result.updated += changed.filter(~seen).height
        self.result.merged_duplicates += merged_rows + final.filter(seen).height
        ids = service.member_ids(store=self.store)
        self.touched = pl.concat([self.touched, ids["member_id"]])
        consent = merged.filter(pl.col("consent").is_not_null()).join(ids, on="grp")
        service.record_consent(
            store=self.store,
            events=consent.select(
                "member_id",
                pl.when("consent")
                .then(pl.lit("opt_in"))
                .otherwise(pl.lit("opt_out"))
                .alias("kind"),
                pl.lit(self.source).alias("source"),
                pl.coalesce("registered_at", pl.lit(now, dtype=UTC_TIME)).alias("occurred_at"),
                pl.lit(now, dtype=UTC_TIME).alias("created_at"),
            ),
        )


NO_PROBLEMS = pl.DataFrame(schema={"line": pl.Int64, "reason": pl.String, "rejected": pl.Boolean})
STORED_FIELDS = (
    "code", "phone", "phone_status", "name", "gender", "birthday", "birthday_is_lunar",
    "store_id", "tier", "points", "registered_at",
)  # fmt: skip
NEWEST_WINS = ("code", "phone", "name", "gender", "store_id", "tier", "points", "registered_at")


def final_values(merged: pl.DataFrame, matched: pl.DataFrame) -> pl.DataFrame:
    """The values each member ends with, by the rule in the module docstring, and `changed`."""
    joined = merged.join(matched, on="grp", how="left", suffix="_old")
    newer = (
        pl.col("recency").is_null()
        | pl.col("registered_at_old").is_null()
        | (pl.col("recency") >= pl.col("registered_at_old"))
    )
    take_birthday = pl.col("birthday").is_not_null() & (newer | pl.col("birthday_old").is_null())
    old_status = pl.col("phone_status_old")
    keep_new_status = newer | old_status.is_null() | (old_status == "missing")
    final = joined.with_columns(
        *(
            pl.when(newer)
            .then(pl.coalesce(name, f"{name}_old"))
            .otherwise(pl.coalesce(f"{name}_old", name))
            .alias(name)
            for name in NEWEST_WINS
        ),
        pl.when(take_birthday).then("birthday").otherwise("birthday_old").alias("birthday"),
        pl.when(take_birthday)
        .then("birthday_is_lunar")
        .otherwise(pl.coalesce("birthday_is_lunar_old", "birthday_is_lunar"))
        .alias("birthday_is_lunar"),
    ).with_columns(
        pl.when(pl.col("phone").is_not_null())
        .then(pl.lit("ok"))
        .when(keep_new_status & (pl.col("phone_status") != "missing"))
        .then("phone_status")
        .otherwise(pl.coalesce(old_status, "phone_status"))
        .alias("phone_status")
    )
    changed = pl.any_horizontal(
        pl.col(name).ne_missing(pl.col(f"{name}_old")) for name in STORED_FIELDS
    )
    return final.with_columns(changed.alias("changed"))


def _group_problems(groups: pl.DataFrame, reason: pl.Expr) -> pl.DataFrame:
    """One rejected problem per line of each group, with the group's reason."""
    return (
        groups.select(reason.alias("reason"), "lines")
        .explode("lines")
        .select(pl.col("lines").alias("line"), "reason", pl.lit(True).alias("rejected"))
    )


def members_from_records(records: list[dict[str, object]]) -> pl.DataFrame:
    """A frame of text columns from API objects; `line` is each object's index."""
    rows = [
        {name: None if value is None else str(value) for name, value in record.items()}
        for record in records
    ]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(MEMBER_FIELDS, pl.String))
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("line"))


STORE_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "store_code", "门店编码", "门店代码", "编码", "门店编号", "编号"),
    "name": ("name", "store_name", "门店名称", "门店", "名称"),
    "city": ("city", "城市"),
    "type": ("type", "store_type", "门店类型", "类型"),
    "latitude": ("latitude", "lat", "纬度"),
    "longitude": ("longitude", "lng", "lon", "经度"),
}


def clean_stores(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cleans store rows; returns (one row per code, the last one winning; problems)."""
    frame = with_all_fields(frame, tuple(STORE_ALIASES)).with_columns(
        text(name).alias(name) for name in STORE_ALIASES
    )
    position = {
        name: pl.col(name).cast(pl.Float64, strict=False).alias(f"_{name}")
        for name in ("latitude", "longitude")
    }
    frame = frame.with_columns(position.values())
    problem = reasons(
        pl.when(pl.col("code").is_null()).then(pl.lit("no store code")),
        pl.when(pl.col("name").is_null()).then(pl.lit("no store name")),
        *(
            pl.when(pl.col(name).is_not_null() & pl.col(f"_{name}").is_null()).then(
                pl.format(f"{name} '{{}}' is not a number", name)
            )
            for name in position
        ),
    )
    frame = frame.with_columns(problem.alias("reason"))
    rejected = frame.filter(pl.col("reason").is_not_null()).select("line", "reason")
    good = frame.filter(pl.col("reason").is_null()).select(
        "code", "name", "city", "type", pl.col("_latitude").alias("latitude"),
        pl.col("_longitude").alias("longitude"),
    )  # fmt: skip
    return good.unique("code", keep="last", maintain_order=True), rejected


def import_stores(
    *,
    engine: Engine,
    path: Path,
    mapping: Path | None = None,
    rejects_path: Path | None = None,
    progress: bool = False,
) -> ImportResult:
    """Imports a store CSV (code, name, city, type, latitude, longitude), upserting by code."""
    settings = get_settings()
    path = Path(path)
    result = ImportResult()
    with CsvSource(path, aliases=STORE_ALIASES, mapping_path=mapping) as csv:
        csv.require(all_of=("code", "name"))
        rejects = RejectsWriter(RejectsWriter.beside(path, rejects_path), csv.header)
        with bulk_store(engine) as store:
            try:
                for raw in csv.batches(settings.import_batch_rows, progress=progress):
                    good, problems = clean_stores(csv.canonical(raw))
                    inserted, updated = service.upsert_stores(store=store, stores=good)
                    store.commit()
                    rejects.write(raw, problems)
                    result.rows += raw.height
                    result.inserted += inserted
                    result.updated += updated
                    result.rejected += problems.height
                    result.merged_duplicates += raw.height - problems.height - good.height
            finally:
                result.rejects_file = rejects.close()
    return result
