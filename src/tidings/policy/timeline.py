"""Message times per member (or per member and offer type), counted in bulk for caps and cool-downs.

A timeline answers, for a whole array of (group, time) queries at once, how many messages of
the group fall in a stretch of time, with `numpy.searchsorted` over one sorted key array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

# Coarser clock units for the encoded keys, used only when group count x time span would
# overflow 62 bits (for a million members that takes a span of about two months).
KEY_UNITS = (1, 1_000, 1_000_000, 60_000_000)  # microseconds
KEY_LIMIT = 2**62


@dataclass(frozen=True)
class Timeline:
    """Message times (microseconds) grouped by an integer id, answering range counts in bulk.

    Each (group, time) is encoded as one sortable integer, group * stride + time offset, so that
    a single `searchsorted` answers "how many messages of this group before this time" for a
    whole array of queries. Per-group counts and latest times let most queries skip the search.
    """

    times: np.ndarray
    keys: np.ndarray
    counts: np.ndarray  # messages per group
    latest: np.ndarray  # latest time per group (the int64 minimum when none)
    base: int
    top: int
    unit: int

    @classmethod
    def build(
        cls, groups: np.ndarray, times: np.ndarray, *, group_count: int, extent: tuple[int, int]
    ) -> Timeline:
        """Sorts (group, time) pairs; `extent` is the range of times expected to be added later."""
        groups = groups.astype(np.int64, copy=False)
        times = times.astype(np.int64, copy=False)
        low = min(int(times.min()), extent[0]) if times.size else extent[0]
        high = max(int(times.max()), extent[1]) if times.size else extent[1]
        group_count = max(group_count, int(groups.max()) + 1 if groups.size else 1)
        unit = next(
            (u for u in KEY_UNITS if group_count * ((high - low) // u + 3) < KEY_LIMIT),
            KEY_UNITS[-1],
        )
        latest = np.full(group_count, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(latest, groups, times)
        counts = np.bincount(groups, minlength=group_count)
        # A unit of margin either side keeps clipped queries in buckets of their own.
        empty = cls(times, times, counts, latest, low - unit, high + unit, unit)
        keys = empty._key(groups, times)
        if unit == 1:
            # Each key holds its time whole, so sorting the keys alone sorts both.
            keys.sort()
            return cls(keys % empty.stride + empty.base, keys, counts, latest, *empty._bounds)
        # Messages sharing a key are counted and listed alike, so their order does not matter.
        order = np.argsort(keys)
        return cls(times[order], keys[order], counts, latest, *empty._bounds)

    @property
    def _bounds(self) -> tuple[int, int, int]:
        return self.base, self.top, self.unit

    @property
    def stride(self) -> int:
        """Key distance between one group and the next."""
        return (self.top - self.base) // self.unit + 1

    def add(self, groups: np.ndarray, times: np.ndarray, *, in_place: bool = False) -> Timeline:
        """A timeline holding these times as well (merged in place of a full re-sort).

        With `in_place`, the per-group counts are updated rather than copied: for a caller that
        never reads this timeline again (they are as long as there are groups).
        """
        if groups.size == 0:
            return self
        inside = (
            int(times.min()) >= self.base + self.unit and int(times.max()) <= self.top - self.unit
        )
        if not inside:
            return Timeline.build(
                np.concatenate([self.keys // self.stride, groups]),
                np.concatenate([self.times, times]),
                group_count=self.counts.size,
                extent=(self.base + self.unit, self.top - self.unit),
            )
        keys = self._key(groups, times)
        order = np.argsort(keys, kind="stable")
        at = np.searchsorted(self.keys, keys[order], side="right")
        counts, latest = (
            (self.counts, self.latest) if in_place else (self.counts.copy(), self.latest.copy())
        )
        np.add.at(counts, groups, 1)
        np.maximum.at(latest, groups, times)
        return Timeline(
            np.insert(self.times, at, times[order]),
            np.insert(self.keys, at, keys[order]),
            counts,
            latest,
            self.base,
            self.top,
            self.unit,
        )

    def _key(self, groups: np.ndarray, times: np.ndarray) -> np.ndarray:
        # Clipping just outside the stored times keeps every count exact.
        clipped = np.clip(times, self.base, self.top)
        return groups * self.stride + (clipped - self.base) // self.unit

    def position(self, groups: np.ndarray, times: np.ndarray, *, after: bool) -> np.ndarray:
        """Index of the first stored message later than (after) or not earlier than each time."""
        side: Literal["left", "right"] = "right" if after else "left"
        return np.searchsorted(self.keys, self._key(groups, times), side=side)

    def group_end(self, groups: np.ndarray) -> np.ndarray:
        """Index just past each group's last message."""
        return self.position(groups, np.full(groups.shape, self.top), after=True)

    def count_of(self, groups: np.ndarray) -> np.ndarray:
        """Messages per group (0 for a negative group: no group)."""
        return np.where(groups >= 0, self.counts[np.maximum(groups, 0)], 0)


def expand(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query, element) index pairs for every element in [low, high) of each query."""
    lengths = np.maximum(high - low, 0)
    query = np.repeat(np.arange(low.size), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return query, np.arange(query.size) - starts + np.repeat(low, lengths)


def _busiest_later(
    timeline: Timeline, *, groups: np.ndarray, times: np.ndarray, windows: np.ndarray
) -> np.ndarray:
    """Per query, the most messages any window ending at a later message already holds."""
    low = timeline.position(groups, times, after=False)
    high = timeline.position(groups, times + windows, after=False)
    query, element = expand(low, high)
    later = timeline.times[element]
    element_groups = groups[query]
    counts = timeline.position(element_groups, later, after=True) - timeline.position(
        element_groups, later - windows[query], after=True
    )
    busiest = np.zeros(groups.shape, dtype=np.int64)
    np.maximum.at(busiest, query, counts)
    return busiest


def cap_fits(
    timeline: Timeline,
    *,
    groups: np.ndarray,
    times: np.ndarray,
    windows: np.ndarray,
    limits: np.ndarray,
) -> np.ndarray:
    """Tells, per query, whether one more message at `times` keeps every window under its limit."""
    fits = timeline.count_of(groups) < limits
    # Only groups with as many messages as the limit can be full somewhere.
    rest = np.flatnonzero(~fits & (limits > 0))
    if rest.size == 0:
        return fits
    groups, times, windows = groups[rest], times[rest], windows[rest]
    busiest = timeline.position(groups, times, after=True) - timeline.position(
        groups, times - windows, after=True
    )
    ahead = np.flatnonzero(timeline.latest[groups] >= times)
    if ahead.size:
        later = _busiest_later(
            timeline, groups=groups[ahead], times=times[ahead], windows=windows[ahead]
        )
        busiest[ahead] = np.maximum(busiest[ahead], later)
    fits[rest] = busiest < limits[rest]
    return fits


def clear_of(
    timeline: Timeline, *, groups: np.ndarray, times: np.ndarray, cooldown: int
) -> np.ndarray:
    """Tells, per query, whether no message of the group lies within `cooldown` either side."""
    clear = timeline.count_of(groups) == 0
    rest = np.flatnonzero(~clear)
    if rest.size == 0 or cooldown == 0:
        return np.ones(groups.shape, dtype=bool) if cooldown == 0 else clear
    groups, times = groups[rest], times[rest]
    within = timeline.position(groups, times + cooldown, after=False) - timeline.position(
        groups, times - cooldown, after=True
    )
    clear[rest] = within == 0
    return clear
