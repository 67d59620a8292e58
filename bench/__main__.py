"""Runs benchmark scenarios: `python -m bench` for all, `python -m bench NAME ...` for some."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench.scenarios
from bench.harness import describe_machine


def main(names: list[str]) -> None:
    available = sorted(module.name for module in pkgutil.iter_modules(bench.scenarios.__path__))
    chosen = names or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        sys.exit(f"unknown scenario(s) {', '.join(unknown)}; available: {', '.join(available)}")
    print(describe_machine(), flush=True)
    for name in chosen:
        module = importlib.import_module(f"bench.scenarios.{name}")
        module.run()


if __name__ == "__main__":
    main(sys.argv[1:])
