"""The policy decision for 1,000,000 candidate messages against 3,000,000 messages of history.

The issue's budget is 5 s for rendering, length and lint checks and the policy decision
together; the policy's share is 2 s. The candidates mimic a busy day: five overlapping
campaigns, lifecycle triggers, receipts and replies, members in five timezones, a tenth
without consent, a few percent suppressed, and ninety days of earlier messages.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from bench.harness import report
from tidings.config import Settings
from tidings.policy.decide import decide
from tidings.policy.rules import PolicyRules

CANDIDATES = 1_000_000
HISTORY = 3_000_000
MEMBERS = 600_000
TARGET_SECONDS = 2.0  # the policy's share of the 5 s
NOW = datetime(2025, 11, 20, 1, 30, tzinfo=UTC)
HISTORY_DAYS = 90
TIMEZONES = ["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "America/Los_Angeles", None]
TIMEZONE_SHARES = [0.6, 0.05, 0.05, 0.05, 0.25]
KINDS = ["marketing", "trigger", "transactional", "reply"]
KIND_SHARES = [0.7, 0.2, 0.08, 0.02]
OFFERS = ["coupon", "points", "new_arrival", "birthday", "flash_sale", None]
TIERS = ["bronze", "silver", "gold"]
STAGES = ["new", "active", "dormant", "lapsed", "never"]
MICROSECONDS_PER_DAY = 86_400_000_000


def _times(rng: np.random.Generator, *, start: datetime, days: float, size: int) -> pl.Series:
    offsets = rng.integers(0, int(days * MICROSECONDS_PER_DAY), size)
    start_us = int(start.timestamp() * 1_000_000)
    series = pl.Series(start_us + offsets).cast(pl.Datetime("us"))
    return series.dt.replace_time_zone("UTC")


def _pick(values: list[str | None], codes: np.ndarray) -> pl.Series:
    """Values by index, nulls included, without a Python object per row."""
    return pl.Series(codes).replace_strict(list(range(len(values))), values, return_dtype=pl.String)


def synthetic_candidates(*, rows: int, members: int, seed: int = 4) -> pl.DataFrame:
    """Candidate messages for a day: campaigns, triggers, receipts and replies."""
    rng = np.random.default_rng(seed)
    member = rng.integers(0, members, rows)
    kind = np.array(KINDS)[rng.choice(len(KINDS), rows, p=KIND_SHARES)]
    campaign = np.where(kind == "marketing", rng.integers(1, 6, rows), -1)
    trigger = np.where(kind == "trigger", rng.integers(1, 9, rows), -1)
    # Member attributes come from the member, so every candidate of one member agrees.
    member_tier = rng.choice(3, members, p=[0.7, 0.22, 0.08])
    member_stage = rng.integers(0, len(STAGES), members)
    member_zone = rng.choice(len(TIMEZONES), members, p=TIMEZONE_SHARES)
    member_consent = rng.random(members) > 0.1
    return pl.DataFrame(
        {
            "member_id": member,
            "phone_hash": np.char.add("h", member.astype(str)),
            "kind": kind,
            "campaign_id": campaign,
            "trigger_id": trigger,
            "offer_type": _pick(OFFERS, rng.integers(0, len(OFFERS), rows)),
            "desired_at": _times(rng, start=NOW, days=1.0, size=rows),
            "consent": member_consent[member],
            "tier": np.array(TIERS)[member_tier[member]],
            "lifecycle_stage": np.array(STAGES)[member_stage[member]],
            "timezone": _pick(TIMEZONES, member_zone[member]),
        },
    ).with_columns(
        pl.col("campaign_id", "trigger_id").replace(-1, None),
        expires_at=pl.col("desired_at") + timedelta(days=2),
    )


def synthetic_history(*, rows: int, members: int, seed: int = 5) -> pl.DataFrame:
    """Messages of the last ninety days for the same members."""
    rng = np.random.default_rng(seed)
    kind = np.array(KINDS)[rng.choice(len(KINDS), rows, p=KIND_SHARES)]
    return pl.DataFrame(
        {
            "member_id": rng.integers(0, members, rows),
            "kind": kind,
            "campaign_id": rng.integers(1_000, 1_400, rows),
            "trigger_id": None,
            "offer_type": _pick(OFFERS, rng.integers(0, len(OFFERS), rows)),
            "sent_at": _times(
                rng, start=NOW - timedelta(days=HISTORY_DAYS), days=HISTORY_DAYS, size=rows
            ),
        },
        schema_overrides={"trigger_id": pl.Int64},
    )


def synthetic_suppressions(*, members: int, seed: int = 6) -> pl.DataFrame:
    """Suppressed phones: about 3% of members, mostly opt-outs."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(members, members * 3 // 100, replace=False)
    reasons = np.array(["opted_out", "complained", "invalid", "erased"])
    return pl.DataFrame(
        {
            "phone_hash": np.char.add("h", chosen.astype(str)),
            "reason": reasons[rng.choice(4, chosen.size, p=[0.8, 0.05, 0.1, 0.05])],
        }
    )


def run() -> None:
    """Measures one decision over a million candidates and reports seconds."""
    candidates = synthetic_candidates(rows=CANDIDATES, members=MEMBERS)
    history = synthetic_history(rows=HISTORY, members=MEMBERS)
    suppressions = synthetic_suppressions(members=MEMBERS)
    rules = PolicyRules.from_settings(Settings())
    started = time.perf_counter()
    decided = decide(candidates, history=history, suppressions=suppressions, rules=rules, now=NOW)
    seconds = time.perf_counter() - started
    counts = decided.group_by("decision", "reason").len().sort("len", descending=True)
    shown = ", ".join(f"{d}/{r}: {n:,}" for d, r, n in counts.iter_rows())
    print(f"policy: {CANDIDATES:,} candidates, {HISTORY:,} history rows; {shown}", flush=True)
    report(
        "policy",
        seconds,
        "s",
        f"<= {TARGET_SECONDS:.0f} s for 1,000,000 candidates",
        met=seconds <= TARGET_SECONDS,
    )
