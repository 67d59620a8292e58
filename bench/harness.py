"""Reporting for benchmark scenarios: one line per figure, appended to bench/results.json.

Machines differ (the same code ran twice as slow on one as on another), so each figure is
recorded beside the time a fixed Python loop took on the machine that made it, and the load.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import threading
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


def tree_rss_kib(pid: int) -> int:
    """The resident memory of a process and all its descendants now, KiB (Linux /proc)."""
    kib = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                kib = int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                kib += tree_rss_kib(int(child))
    except OSError:  # the process ended meanwhile
        pass
    return kib


class TreePeak:
    """Samples, every `interval` seconds while the block runs, the resident memory of this
    process and its children together; `mib` is the highest sum seen (a short spike between
    two samples may be missed)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.kib = interval, 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    @property
    def mib(self) -> float:
        return self.kib / 1024

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.kib = max(self.kib, tree_rss_kib(os.getpid()))

    def __enter__(self) -> TreePeak:
        self._sampler.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._sampler.join()
