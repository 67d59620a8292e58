"""Merging the rows of one member into one, within a batch and against the store.

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
"""

from __future__ import annotations

import polars as pl


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
