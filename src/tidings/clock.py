"""The one source of "now": tests freeze it, quiet hours and windows depend on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """Returns the current time, timezone-aware in UTC (or the frozen time in tests)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC)


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
