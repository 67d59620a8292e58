"""A campaign's charts are real PNG files of the expected size, and the console gets the same
series as JSON."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tidings.reports.charts import DPI, FIGURE_SIZE, campaign_charts, chart_data
from tidings.reports.stats import ab_summary, holdout_lift

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's header (its first chunk, IHDR)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _report(*, holdout: int = 300, variants: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(4)
    treated = 2700
    converted = (rng.random(treated + holdout) < 0.05).astype(np.int64)
    members = pl.DataFrame(
        {
            "holdout": [False] * treated + [True] * holdout,
            "converted": converted,
            "revenue_cents": converted * 8800,
        }
    )
    arms = pl.DataFrame(
        {
            "variant": ["A", "B"],
            "recipients": [1350, 1350],
            "clicked": [40, 61],
            "converted": [60, 81],
        }
    )
    return {
        "campaign": {"id": 7, "name": "双十二会员日"},
        "funnel": {
            "planned": 3000,
            "sent": 2700,
            "delivered": 2630,
            "failed": 70,
            "clicked": 101,
            "replied": 12,
            "opted_out": 3,
            "complained": 0,
            "converted": 141,
            "revenue_cents": 1240800,
            "cost_cents": 13500,
        },
        "by_day": [
            {"day": "2026-12-01", "sent": 1500, "delivered": 1470, "failed": 30},
            {"day": "2026-12-02", "sent": 1200, "delivered": 1160, "failed": 40},
        ],
        "ab": ab_summary(arms, control="A") if variants else [],
        "lift": holdout_lift(members),
    }


def test_every_chart_is_a_png_of_the_figure_size(tmp_path: Path) -> None:
    paths = campaign_charts(_report(), tmp_path / "charts")
    assert set(paths) == {"funnel", "daily", "ab", "lift"}
    expected = (int(FIGURE_SIZE[0] * DPI), int(FIGURE_SIZE[1] * DPI))
    for path in paths.values():
        file = Path(path)
        assert file.parent == tmp_path / "charts" and file.stat().st_size > 1000
        assert _png_size(file) == expected


def test_charts_without_data_are_left_out(tmp_path: Path) -> None:
    report = _report(holdout=0, variants=False)
    report["by_day"] = []
    assert set(campaign_charts(report, tmp_path)) == {"funnel"}


def test_the_console_gets_the_series_the_charts_draw() -> None:
    report = _report()
    data = chart_data(report)
    funnel = report["funnel"]
    assert data["funnel"]["values"] == [funnel[step] for step in data["funnel"]["steps"]]
    assert data["funnel"]["steps"][:3] == ["planned", "sent", "delivered"]
    daily = data["daily"]
    assert daily["days"] == ["2026-12-01", "2026-12-02"]
    assert daily["sent"] == [1500, 1200]
    assert daily["delivery_rate"] == pytest.approx([1470 / 1500, 1160 / 1200])
    control, variant = data["ab"]["converted"]
    assert (control["name"], variant["name"]) == ("A", "B")
    assert variant["value"] == pytest.approx(81 / 1350)
    assert variant["low"] < variant["value"] < variant["high"]
    assert control == {"name": "A", **report["ab"][0]["converted"]["control_rate"]}
    treated, held = data["lift"]["conversion_rate"]
    assert treated == {"name": "treated", **report["lift"]["treated"]["conversion_rate"]}
    assert held["name"] == "holdout"
    revenue = data["lift"]["revenue_per_member_cents"][0]
    assert revenue["value"] == pytest.approx(report["lift"]["treated"]["revenue_cents"] / 2700)


def test_no_holdout_gives_no_lift_series() -> None:
    assert chart_data(_report(holdout=0))["lift"] is None
