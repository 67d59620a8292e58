"""Seconds spent in each phase of planning a campaign, for the bench and for slow-plan logs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Adds the wall-clock seconds of each named phase to `phases` (nothing when it is None)."""

    def __init__(self, phases: dict[str, float] | None) -> None:
        self.phases = phases

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.phases is not None:
                seconds = time.perf_counter() - started
                self.phases[name] = self.phases.get(name, 0.0) + seconds
