"""Writes a campaign report's rows to files: one CSV with a `level` column (campaign, variant,
store, day) and the level's value in `key`, or an Excel workbook with one sheet per level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from tidings.reports.results import FUNNEL_KEYS

# (report key, level name, the rows' own key column)
LEVELS: tuple[tuple[str, str, str], ...] = (
    ("by_variant", "variant", "variant"),
    ("by_store", "store", "store_code"),
    ("by_day", "day", "day"),
)
ROW_SCHEMA: dict[str, pl.DataType] = {
    "level": pl.String(),
    "key": pl.String(),
    **{name: pl.Int64() for name in FUNNEL_KEYS},
}


def level_frame(rows: list[dict[str, Any]], level: str, key_column: str | None) -> pl.DataFrame:
    """The rows of one level as a frame of `ROW_SCHEMA` (the key as text)."""
    records = [
        {
            "level": level,
            "key": None
            if key_column is None or row.get(key_column) is None
            else str(row[key_column]),
            **{name: row.get(name) for name in FUNNEL_KEYS},
        }
        for row in rows
    ]
    return pl.DataFrame(records, schema=ROW_SCHEMA)


def report_rows(report: dict[str, Any]) -> pl.DataFrame:
    """Every row of the report: the campaign's funnel first, then each level's rows."""
    parts = [level_frame([report["funnel"]], "campaign", None)]
    parts += [level_frame(report[key], level, column) for key, level, column in LEVELS]
    return pl.concat(parts, how="vertical").with_columns(
        pl.when(pl.col("level") == "campaign")
        .then(pl.lit(str(report["campaign"]["id"])))
        .otherwise(pl.col("key"))
        .alias("key")
    )


def write_csv(report: dict[str, Any], path: Path) -> Path:
    """Writes the report's rows as one UTF-8 CSV (with a BOM, so Excel reads the Chinese)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report_rows(report).write_csv(path, include_bom=True)
    return path


def write_xlsx(report: dict[str, Any], path: Path) -> Path:
    """Writes a workbook with sheets funnel, by_variant, by_store, by_day, ab and lift."""
    import xlsxwriter

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = report_rows(report)
    with xlsxwriter.Workbook(str(path)) as workbook:
        rows.filter(pl.col("level") == "campaign").drop("level").write_excel(
            workbook=workbook, worksheet="funnel"
        )
        for key, level, column in LEVELS:
            sheet = rows.filter(pl.col("level") == level).drop("level").rename({"key": column})
            sheet.write_excel(workbook=workbook, worksheet=key)
        _ab_frame(report["ab"]).write_excel(workbook=workbook, worksheet="ab")
        _lift_frame(report["lift"]).write_excel(workbook=workbook, worksheet="lift")
    return path


def _ab_frame(comparisons: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per variant compared with the control: its figures flattened, and the verdict."""
    return pl.DataFrame(
        [
            {"variant": row["variant"], "control": row["control"], "verdict": row["verdict"]}
            | {
                f"{metric}_{name}": json.dumps(value, ensure_ascii=False)
                if isinstance(value, dict)
                else value
                for metric in ("converted", "clicked")
                for name, value in row[metric].items()
                if name != "verdict"
            }
            for row in comparisons
        ],
        schema_overrides={"variant": pl.String, "control": pl.String, "verdict": pl.String},
    )


def _lift_frame(lift: dict[str, Any]) -> pl.DataFrame:
    """The lift as figure/value pairs (nested figures as JSON text)."""
    return pl.DataFrame(
        {
            "figure": list(lift),
            "value": [
                json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
                for value in lift.values()
            ],
        },
        schema={"figure": pl.String, "value": pl.String},
    )
