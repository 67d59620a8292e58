"""Segment count over 1,000,000 profiles held in memory: a five-condition rule, median time.

Target (issue 3): at most 100 ms median once profiles are loaded. The audience frame is
built directly in memory (the snapshot a running service keeps), so only the count is timed.
"""

from __future__ import annotations

import statistics
import time
from datetime import date

import numpy as np
import polars as pl

from bench.harness import report
from tidings.segments.fields import audience_schema
from tidings.segments.rules import parse
from tidings.segments.service import matching_ids

MEMBERS = 1_000_000
RUNS = 30
TARGET_MS = 100.0  # milliseconds, median
RULE = (
    'tier in ("gold", "silver") and days_since_last_order <= 90 and "榴莲爱好者" in tags'
    ' and city == "上海" and spend_90d > 200'
)
CITIES = ["上海", "北京", "杭州", "南京", "苏州", "成都"]
TIERS = ["bronze", "silver", "gold"]
TAGS = ["榴莲爱好者", "母婴", "夜猫子", "价格敏感", "咖啡", "宠物主人"]


def synthetic_audience(members: int, seed: int = 7) -> pl.DataFrame:
    """Builds an audience frame of `members` rows with plausible spreads of each field."""
    rng = np.random.default_rng(seed)
    tag_count = rng.integers(0, 4, members)
    offsets = np.concatenate([[0], np.cumsum(tag_count)])
    tag_values = np.array(TAGS)[rng.integers(0, len(TAGS), int(offsets[-1]))]
    tags = (
        pl.Series("tags", tag_values)
        .to_frame()
        .with_columns(pl.Series("row", np.repeat(np.arange(members), tag_count)))
    )
    grouped = tags.group_by("row").agg("tags")
    frame = pl.DataFrame(
        {
            "member_id": np.arange(1, members + 1),
            "city": np.array(CITIES)[rng.integers(0, len(CITIES), members)],
            "tier": np.array(TIERS)[rng.choice(3, members, p=[0.7, 0.2, 0.1])],
            "days_since_last_order": rng.integers(0, 720, members),
            "spend_90d": rng.gamma(1.2, 30_000, members).astype(np.int64),
        }
    ).with_row_index("row")
    frame = frame.join(grouped, on="row", how="left").drop("row")
    schema = audience_schema()
    missing = [
        pl.lit(None, dtype=dtype).alias(n) for n, dtype in schema.items() if n not in frame.columns
    ]
    return (
        frame.with_columns(missing)
        .with_columns(pl.col("tags").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .select(list(schema))
        .sort("member_id")
    )


def run() -> None:
    audience = synthetic_audience(MEMBERS)
    rule = parse(RULE)
    timings = []
    count = 0
    for _ in range(RUNS):
        started = time.perf_counter()
        ids = matching_ids(
            rule=rule, audience=audience, order_lines=None, today=date(2025, 1, 31), saved={}
        )
        count, sample = ids.len(), ids.head(5).to_list()
        timings.append((time.perf_counter() - started) * 1000)
    median = statistics.median(timings)
    print(
        f"segment_count: {count:,} of {MEMBERS:,} members match (first {sample});"
        f" {RUNS} runs, best {min(timings):.1f} ms, worst {max(timings):.1f} ms"
    )
    report("segment_count", median, "ms median", f"<= {TARGET_MS:.0f} ms", met=median <= TARGET_MS)
