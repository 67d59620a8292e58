"""Reading and cleaning the next batch while the store writes the current one.

Polars releases the interpreter while it parses and cleans, and SQLite releases it while it
steps through inserts, so the two overlap on a second core. At most `depth` finished batches
wait, which keeps memory bounded on any size of file.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

PUT_WAIT = 0.1  # seconds between checks that the reader is still wanted


def read_ahead(items: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """Yields `items` in order, producing the next ones in a thread meanwhile.

    An error raised while producing is raised here, after the items produced before it.
    Leaving the loop early stops the producer at its next item.
    """
    waiting: queue.Queue[tuple[bool, T | BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[bool, T | BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                waiting.put(entry, timeout=PUT_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((True, item)):
                    return
            offer((False, None))
        except BaseException as error:  # handed to the consumer, which raises it
            offer((False, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="tidings-import-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, entry = waiting.get()
            if not more:
                if isinstance(entry, BaseException):
                    raise entry
                return
            yield entry  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
