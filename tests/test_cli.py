"""The `tidings` command starts quickly: a command loads its own domain, not every one."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from tidings.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


def _modules_loaded_by(*arguments: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *arguments], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.splitlines()[-1].split())


def test_a_command_loads_its_own_group_and_not_the_others() -> None:
    loaded = _modules_loaded_by("segment", "fields")
    assert "tidings.segments.cli" in loaded
    others = {"tidings.campaigns", "tidings.reports", "tidings.dispatch", "tidings.demo", "scipy"}
    assert sorted(others & loaded) == []
