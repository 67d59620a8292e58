"""`bulk.WriteBehind` runs writes on a thread of its own, in the order they are handed over,
and stops at the first that fails."""

from __future__ import annotations

import functools
import threading

import pytest

from tidings.bulk import WriteBehind


class DiskFull(RuntimeError):
    """Stands for a write the store refuses."""


def test_writes_run_in_order_beside_the_caller() -> None:
    done: list[tuple[int, str]] = []
    release = threading.Event()

    def write(number: int) -> None:
        release.wait(5)
        done.append((number, threading.current_thread().name))

    with WriteBehind() as writer:
        for number in range(5):
            writer.submit(functools.partial(write, number))
        assert done == []  # the caller went on while the first write waits
        release.set()
        writer.wait()
        assert [number for number, _ in done] == [0, 1, 2, 3, 4]
    assert all(name.startswith("tidings-write-behind") for _, name in done)


def test_a_failed_write_drops_the_later_ones_and_is_raised() -> None:
    done: list[int] = []

    def refused() -> None:
        raise DiskFull("no space left on the store's disk")

    with WriteBehind() as writer:
        writer.submit(lambda: done.append(1))
        writer.submit(refused)
        writer.submit(lambda: done.append(3))
        with pytest.raises(DiskFull):
            writer.wait()
        with pytest.raises(DiskFull):
            writer.submit(lambda: done.append(4))
    assert done == [1]
