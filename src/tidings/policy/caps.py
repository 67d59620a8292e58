"""Frequency caps and offer cool-downs: which candidates fit, in priority order, and when others go.

Candidates are taken in rounds: round k holds every member's k-th candidate in priority order
(higher priority first, then earlier time), so a round has at most one candidate per member and
is checked for all members at once. Round 1 is most of the work; there are as many rounds as the
most candidates any one member has.

A candidate fits a cap when every rolling window that would contain it holds fewer than the
limit: the window ending at the candidate and the windows ending at later (planned) messages.
It clears the cool-down when no message of the same offer type lies within the cool-down before
or after it. One that does not fit is deferred to the earliest time it would fit, which is
always the opening of the send window at or after some counted message leaves a window
(message + window, or message + cool-down); if that is after its expiry, it is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from tidings.policy.reasons import SkipReason
from tidings.policy.rules import CandidateKind, PolicyRules
from tidings.policy.windows import open_times

MICROSECONDS_PER_DAY = 86_400 * 1_000_000
NO_EXPIRY = np.iinfo(np.int64).max
# Coarser clock units for the encoded keys, used only when group count x time span would
# overflow 62 bits (for a million members that takes a span of about two months).
KEY_UNITS = (1, 1_000, 1_000_000, 60_000_000)  # microseconds
KEY_LIMIT = 2**62
# Reasons a round's loser did not fit, coded as small integers while in arrays.
LOSS_CODES = (SkipReason.FREQUENCY_CAP, SkipReason.LOST_TO_PRIORITY, SkipReason.OFFER_COOLDOWN)


@dataclass(frozen=True)
class Timeline:
    """Message times (microseconds) grouped by an integer id, answering range counts in bulk."""

    groups: np.ndarray
    times: np.ndarray
    keys: np.ndarray
    base: int
    top: int
    unit: int
    stride: int

    @classmethod
    def build(cls, groups: np.ndarray, times: np.ndarray) -> Timeline:
        """Sorts (group, time) pairs into a searchable timeline."""
        groups = groups.astype(np.int64, copy=False)
        times = times.astype(np.int64, copy=False)
        base = int(times.min()) - 1 if times.size else 0
        top = int(times.max()) + 1 if times.size else 1
        group_count = int(groups.max()) + 1 if groups.size else 1
        unit = next(
            (u for u in KEY_UNITS if group_count * ((top - base) // u + 1) < KEY_LIMIT),
            KEY_UNITS[-1],
        )
        stride = (top - base) // unit + 1
        keys = groups * stride + (times - base) // unit
        order = np.argsort(keys, kind="stable")
        return cls(groups[order], times[order], keys[order], base, top, unit, stride)

    def add(self, groups: np.ndarray, times: np.ndarray) -> Timeline:
        """A timeline holding these times as well."""
        if groups.size == 0:
            return self
        return Timeline.build(
            np.concatenate([self.groups, groups]), np.concatenate([self.times, times])
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


def _expand(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query, element) index pairs for every element in [low, high) of each query."""
    lengths = np.maximum(high - low, 0)
    query = np.repeat(np.arange(low.size), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return query, np.arange(query.size) - starts + np.repeat(low, lengths)


def cap_fits(
    timeline: Timeline,
    *,
    groups: np.ndarray,
    times: np.ndarray,
    windows: np.ndarray,
    limits: np.ndarray,
) -> np.ndarray:
    """Tells, per query, whether one more message at `times` keeps every window under its limit."""
    if timeline.times.size == 0:
        return limits >= 1
    now_after = timeline.position(groups, times, after=True)
    trailing = now_after - timeline.position(groups, times - windows, after=True)
    low = timeline.position(groups, times, after=False)
    high = timeline.position(groups, times + windows, after=False)
    query, element = _expand(low, high)
    later = timeline.times[element]
    element_groups = groups[query]
    counts = timeline.position(element_groups, later, after=True) - timeline.position(
        element_groups, later - windows[query], after=True
    )
    busiest = trailing.copy()
    np.maximum.at(busiest, query, counts)
    return busiest < limits


def clear_of(
    timeline: Timeline, *, groups: np.ndarray, times: np.ndarray, cooldown: int
) -> np.ndarray:
    """Tells, per query, whether no message of the group lies within `cooldown` either side."""
    if timeline.times.size == 0 or cooldown == 0:
        return np.ones(groups.shape, dtype=bool)
    within = timeline.position(groups, times + cooldown, after=False) - timeline.position(
        groups, times - cooldown, after=True
    )
    return (within == 0) | (groups < 0)


@dataclass
class _Round:
    """One round's candidates as arrays (one per member)."""

    rows: np.ndarray
    cap_group: np.ndarray
    offer_group: np.ndarray
    times: np.ndarray
    expires: np.ndarray
    capped: np.ndarray
    windows: np.ndarray
    limits: np.ndarray


@dataclass
class _State:
    """The timelines as the rounds fill them."""

    caps: Timeline
    history_caps: Timeline
    offers: Timeline
    cooldown: int

    def fits(self, each: _Round, times: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
        """Tells whether each query (a candidate of the round at `times`) fits cap and cool-down."""
        pick = slice(None) if index is None else index
        capped = each.capped[pick]
        fits_cap = cap_fits(
            self.caps,
            groups=each.cap_group[pick],
            times=times,
            windows=each.windows[pick],
            limits=each.limits[pick],
        )
        clear = clear_of(
            self.offers, groups=each.offer_group[pick], times=times, cooldown=self.cooldown
        )
        return (fits_cap | ~capped) & clear


def _epoch(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("us")


def _prepare(pending: pl.DataFrame, *, rules: PolicyRules) -> pl.DataFrame:
    """Numbers members and (member, offer type) pairs, attaches each member's cap, orders rounds."""
    limits = [rule.limit for rule in rules.caps]
    windows = [rule.window_days * MICROSECONDS_PER_DAY for rule in rules.caps]
    beyond = [rule.triggers_beyond_cap for rule in rules.caps]
    cap = pl.col("cap").first().over("member_id", order_by="_row")
    is_trigger = pl.col("kind") == CandidateKind.TRIGGER.value
    frame = pending.with_columns(cap=cap).with_columns(
        _limit=pl.col("cap").replace_strict(list(range(len(limits))), limits, default=None),
        _window=pl.col("cap").replace_strict(list(range(len(windows))), windows, default=None),
        _beyond=pl.col("cap").replace_strict(list(range(len(beyond))), beyond, default=None),
    )
    capped = pl.col("_limit").is_not_null() & ~(is_trigger & pl.col("_beyond"))
    offers = (
        frame.filter(pl.col("offer_type").is_not_null())
        .select("member_id", "offer_type")
        .unique()
        .with_row_index("_offer_group")
        .with_columns(pl.col("_offer_group").cast(pl.Int64))
    )
    return (
        frame.join(offers, on=["member_id", "offer_type"], how="left")
        .with_columns(
            pl.col("_offer_group").fill_null(-1),
            _capped=capped.fill_null(False),
            _cap_group=pl.col("member_id").rank("dense").cast(pl.Int64) - 1,
            _at=_epoch("send_at"),
            _expires=_epoch("expires_at").fill_null(NO_EXPIRY),
        )
        .sort(["member_id", "priority", "_at", "_row"], descending=[False, True, False, False])
        .with_columns(_round=pl.int_range(pl.len()).over("member_id"))
    )


def _history_timelines(frame: pl.DataFrame, *, history: pl.DataFrame) -> tuple[Timeline, Timeline]:
    """The counted history of the members in play: one timeline for caps, one for offers."""
    members = frame.group_by("member_id").agg(
        pl.col("_cap_group").first(), pl.col("_beyond").first(), pl.col("_limit").first()
    )
    promotional = pl.col("kind").is_in(
        [k.value for k in (CandidateKind.MARKETING, CandidateKind.TRIGGER)]
    )
    counted = (pl.col("kind") == CandidateKind.MARKETING.value) | (
        (pl.col("kind") == CandidateKind.TRIGGER.value) & ~pl.col("_beyond")
    )
    caps = (
        history.join(members, on="member_id", how="inner")
        .filter(pl.col("_limit").is_not_null() & counted)
        .select("_cap_group", _epoch("sent_at").alias("_at"))
    )
    offer_groups = (
        frame.filter(pl.col("_offer_group") >= 0)
        .select("member_id", "offer_type", "_offer_group")
        .unique()
    )
    offers = (
        history.filter(promotional & pl.col("offer_type").is_not_null())
        .join(offer_groups, on=["member_id", "offer_type"], how="inner")
        .select("_offer_group", _epoch("sent_at").alias("_at"))
    )
    return (
        Timeline.build(caps["_cap_group"].to_numpy(), caps["_at"].to_numpy()),
        Timeline.build(offers["_offer_group"].to_numpy(), offers["_at"].to_numpy()),
    )


def _round_of(frame: pl.DataFrame) -> _Round:
    return _Round(
        rows=frame["_row"].to_numpy(),
        cap_group=frame["_cap_group"].to_numpy(),
        offer_group=frame["_offer_group"].to_numpy(),
        times=frame["_at"].to_numpy(),
        expires=frame["_expires"].to_numpy(),
        capped=frame["_capped"].to_numpy(),
        windows=frame["_window"].fill_null(0).to_numpy(),
        limits=frame["_limit"].fill_null(0).to_numpy(),
    )


def _deferral_points(
    state: _State, each: _Round, losers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(loser, time) pairs: each moment one of the loser's counted messages leaves a window."""
    groups = each.cap_group[losers]
    windows = each.windows[losers]
    low = state.caps.position(groups, each.times[losers] - windows, after=True)
    high = np.where(each.capped[losers], state.caps.group_end(groups), low)
    query, element = _expand(low, high)
    cap_points = state.caps.times[element] + windows[query]
    offer_groups = each.offer_group[losers]
    low = state.offers.position(offer_groups, each.times[losers] - state.cooldown, after=True)
    high = np.where(offer_groups >= 0, state.offers.group_end(offer_groups), low)
    offer_query, offer_element = _expand(low, high)
    offer_points = state.offers.times[offer_element] + state.cooldown
    return (
        losers[np.concatenate([query, offer_query])],
        np.concatenate([cap_points, offer_points]),
    )


def _defer(
    state: _State, each: _Round, losers: np.ndarray, *, frame: pl.DataFrame, rules: PolicyRules
) -> np.ndarray:
    """The earliest time each loser fits within the send window before expiry, or -1."""
    index, points = _deferral_points(state, each, losers)
    best = np.full(each.rows.size, -1, dtype=np.int64)
    if index.size == 0:
        return best[losers]
    where = frame.select("kind", "timezone")[index]
    opened = (
        open_times(
            where.with_columns(
                at=pl.from_epoch(pl.Series(points), time_unit="us").dt.replace_time_zone("UTC")
            ),
            rules=rules,
        )["opens_at"]
        .dt.epoch("us")
        .to_numpy()
    )
    usable = (opened > each.times[index]) & (opened <= each.expires[index])
    index, opened = index[usable], opened[usable]
    fits = state.fits(each, opened, index)
    index, opened = index[fits], opened[fits]
    best[:] = NO_EXPIRY
    np.minimum.at(best, index, opened)
    best[best == NO_EXPIRY] = -1
    return best[losers]


def _reasons(state: _State, each: _Round, losers: np.ndarray) -> np.ndarray:
    """Why each loser did not fit where it asked: cool-down, its cap, or a message ahead of it."""
    times = each.times[losers]
    clear = clear_of(
        state.offers, groups=each.offer_group[losers], times=times, cooldown=state.cooldown
    )
    alone = cap_fits(
        state.history_caps,
        groups=each.cap_group[losers],
        times=times,
        windows=each.windows[losers],
        limits=each.limits[losers],
    )
    codes = np.where(alone, LOSS_CODES.index(SkipReason.LOST_TO_PRIORITY), 0)
    return np.where(clear, codes, LOSS_CODES.index(SkipReason.OFFER_COOLDOWN)).astype(np.int8)


def schedule(pending: pl.DataFrame, *, history: pl.DataFrame, rules: PolicyRules) -> pl.DataFrame:
    """Applies caps and cool-downs to promotional candidates, highest priority first.

    `pending` holds `_row`, `member_id`, `kind`, `priority`, `offer_type`, `send_at`,
    `expires_at`, `timezone` and `cap` (index into `rules.caps`, or null). Returns `_row`,
    `send_at` (null when skipped, later when deferred) and `reason` for every row.
    """
    frame = _prepare(pending, rules=rules)
    history_caps, offers = _history_timelines(frame, history=history)
    cooldown = rules.offer_cooldown_days * MICROSECONDS_PER_DAY
    state = _State(caps=history_caps, history_caps=history_caps, offers=offers, cooldown=cooldown)
    rows, times, reasons = [], [], []
    parts = frame.partition_by("_round", as_dict=True)
    for _, part in sorted(parts.items()):
        each = _round_of(part)
        final = np.where(state.fits(each, each.times), each.times, -1)
        why = np.full(final.shape, -1, dtype=np.int8)
        losers = np.flatnonzero(final < 0)
        if losers.size:
            why[losers] = _reasons(state, each, losers)
            final[losers] = _defer(state, each, losers, frame=part, rules=rules)
        going = final >= 0
        counted = going & each.capped
        state.caps = state.caps.add(each.cap_group[counted], final[counted])
        offered = going & (each.offer_group >= 0)
        state.offers = state.offers.add(each.offer_group[offered], final[offered])
        rows.append(each.rows)
        times.append(final)
        reasons.append(why)
    return _result(rows, times, reasons)


def _result(
    rows: list[np.ndarray], times: list[np.ndarray], reasons: list[np.ndarray]
) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(
            schema={"_row": pl.UInt32, "send_at": pl.Datetime("us", "UTC"), "reason": pl.String}
        )
    final = pl.Series(np.concatenate(times))
    at = pl.from_epoch(pl.col("_at"), time_unit="us").dt.replace_time_zone("UTC")
    frame = pl.DataFrame(
        {
            "_row": pl.Series(np.concatenate(rows), dtype=pl.UInt32),
            "_at": final,
            "_code": pl.Series(np.concatenate(reasons), dtype=pl.Int8),
        }
    )
    codes = list(range(len(LOSS_CODES)))
    reason = pl.col("_code").replace_strict(
        codes, [code.value for code in LOSS_CODES], default=None, return_dtype=pl.String
    )
    return frame.select("_row", send_at=pl.when(pl.col("_at") >= 0).then(at), reason=reason)
