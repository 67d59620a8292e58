"""The one source of "now": tests freeze it, the demo moves it on to a send window, quiet
hours and windows depend on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_frozen: datetime | None = None
_shift = timedelta(0)


def now() -> datetime:
    """Returns the current time, timezone-aware in UTC (or the frozen time in tests)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _shift


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Freezes `now()` at `at` (which must be timezone-aware) inside the block."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("a frozen time must be timezone-aware")
    previous, _frozen = _frozen, at.astimezone(UTC)
    try:
        yield
    finally:
        _frozen = previous


@contextmanager
def shifted(by: timedelta) -> Iterator[None]:
    """Moves `now()` on by `by` inside the block; unlike a frozen clock, it keeps running."""
    global _shift
    previous = _shift
    _shift = previous + by
    try:
        yield
    finally:
        _shift = previous
