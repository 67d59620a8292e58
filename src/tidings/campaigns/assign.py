"""Deterministic draws per (campaign, member): holdout, variant, rollout stage, spread order.

Each draw is a number in [0, 1) from SplitMix64 (Steele, Lea and Flood, 2014) over the
campaign id, a purpose and the member id, computed on whole numpy arrays at once. It is pure
64-bit integer arithmetic, so the same campaign and member give the same draw on every run,
machine and Python version (Python's `hash()` is salted per process; Polars' hash may change
between releases). Different purposes give independent draws, so who is held out says
nothing about who gets variant B or who is in the first rollout stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np

MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
UNIT = 2.0**-53  # one step of a 53-bit fraction, the precision of a float64


class Purpose(IntEnum):
    """What a draw decides; each purpose has a stream of its own."""

    HOLDOUT = 1
    VARIANT = 2
    ROLLOUT = 3
    SPREAD = 4


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of 64-bit integers that scatters every bit."""
    with np.errstate(over="ignore"):
        z = values + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def draws(campaign_id: int, member_ids: np.ndarray, purpose: Purpose) -> np.ndarray:
    """Returns one number in [0, 1) per member, fixed by the campaign, member and purpose."""
    seed = _mix(np.array([campaign_id * 16 + int(purpose)], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        mixed = _mix(member_ids.astype(np.int64).view(np.uint64) ^ seed)
    return (mixed >> np.uint64(11)).astype(np.float64) * UNIT


def pick_by_weight(unit: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Index of the weighted choice each draw in [0, 1) makes (weights need not sum to 1)."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("weights must add up to more than zero")
    bounds = np.cumsum(np.asarray(weights, dtype=np.float64)) / total
    picked = np.searchsorted(bounds, unit, side="right")
    return np.minimum(picked, len(weights) - 1).astype(np.int32)


def rollout_stage_of(unit: np.ndarray, stages: Sequence[int]) -> np.ndarray:
    """The first stage whose cumulative percentage covers each draw (0-based)."""
    bounds = np.asarray(stages, dtype=np.float64) / 100.0
    picked = np.searchsorted(bounds, unit, side="right")
    return np.minimum(picked, len(stages) - 1).astype(np.int32)
