"""Fewer runs of Python's cyclic garbage collector while a dispatcher works.

A send allocates tens of thousands of small tuples a second (claimed rows, answers,
receipts) that live for one batch. At the default threshold (a collection every 700 new
objects) the collector ran hundreds of times a second and promoted each batch's tuples into
older generations that it then walked again: about ten microseconds a message, a tenth of
the dispatcher's time. While any worker of the process runs, a collection waits for
`THRESHOLD` new objects; the thresholds in place before come back when the last one ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLD = (50_000, 20, 20)  # new objects before a collection; collections before an older one
_lock = threading.Lock()
_running = 0
_before: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raises the collector's thresholds for the block (nested and threaded blocks share it)."""
    global _running, _before
    with _lock:
        if _running == 0:
            _before = gc.get_threshold()
            gc.set_threshold(*THRESHOLD)
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                gc.set_threshold(*_before)
