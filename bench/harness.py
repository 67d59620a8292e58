"""Reporting for benchmark scenarios: one line per figure, appended to bench/results.json."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results.json"


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
        }
    )
    RESULTS.write_text(json.dumps(history, indent=1, ensure_ascii=False) + "\n")
