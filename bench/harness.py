"""Reporting for benchmark scenarios: one line per figure, appended to bench/results.json.

Machines differ (the same code ran twice as slow on one as on another), so each figure is
recorded beside the time a fixed Python loop took on the machine that made it, and the load.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results.json"
REFERENCE_ITERATIONS = 5_000_000  # additions in the reference loop


@functools.cache
def reference_seconds() -> float:
    """The best of three runs of a fixed pure-Python loop: how fast this machine runs Python."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(REFERENCE_ITERATIONS):
            total += number
        best = min(best, time.perf_counter() - started)
    return best


def describe_machine() -> str:
    """One line on the machine: cores, the reference loop's time and the load."""
    return (
        f"bench machine: {os.cpu_count()} cores, reference loop"
        f" ({REFERENCE_ITERATIONS:,} additions) {reference_seconds():.2f} s,"
        f" load {os.getloadavg()[0]:.1f}"
    )


def report(name: str, figure: float, unit: str, target: str, *, met: bool) -> None:
    """Prints a figure beside its target and records it."""
    verdict = "met" if met else "MISSED"
    print(f"bench {name}: {figure:,.1f} {unit} (target {target}) {verdict}", flush=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(
        {
            "name": name,
            "figure": round(figure, 3),
            "unit": unit,
            "target": target,
            "met": met,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.python_version()}",
            "reference_loop_s": round(reference_seconds(), 3),
        }
    )
    RESULTS.write_text(json.dumps(history, indent=1, ensure_ascii=False) + "\n")
