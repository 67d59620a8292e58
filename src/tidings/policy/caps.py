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

import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl

from tidings.policy.reasons import SkipReason
from tidings.policy.rules import CandidateKind, PolicyRules
from tidings.policy.timeline import Timeline, cap_fits, clear_of, expand
from tidings.policy.windows import open_times

MICROSECONDS_PER_DAY = 86_400 * 1_000_000
NO_EXPIRY = np.iinfo(np.int64).max
# Reasons a round's loser did not fit, coded as small integers while in arrays.
LOSS_CODES = (SkipReason.FREQUENCY_CAP, SkipReason.LOST_TO_PRIORITY, SkipReason.OFFER_COOLDOWN)
# Ids may spread over this many slots per id looked up before a lookup table costs too much.
DIRECT_LOOKUP_SPAN = 8


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


@dataclass(frozen=True)
class Scheduled:
    """What caps and cool-downs make of each pending candidate, in the order given."""

    times: np.ndarray  # microseconds since the epoch, UTC; -1 when skipped
    reasons: np.ndarray  # index into LOSS_CODES; -1 when it goes as asked


def reason_names(codes: np.ndarray) -> pl.Series:
    """The SkipReason values of loss codes (null for -1)."""
    return pl.Series(codes, dtype=pl.Int8).replace_strict(
        list(range(len(LOSS_CODES))),
        [code.value for code in LOSS_CODES],
        default=None,
        return_dtype=pl.String,
    )


def _prepare(
    pending: pl.DataFrame, *, rules: PolicyRules
) -> tuple[dict[str, np.ndarray], pl.Series]:
    """Numbers members and (member, offer type) pairs, attaches each member's cap and round.

    `pending` is in queue order, so a member's candidates are together and the first is the
    member's most urgent: its tier and stage choose the member's cap. Returns arrays by name
    and the offer types in play (their codes are positions in it).
    """
    member = pending["member_id"].to_numpy()
    first = np.ones(member.size, dtype=bool)
    first[1:] = member[1:] != member[:-1]
    cap_group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    # Index into rules.caps of each member's rule; the last entry of each table is "no rule".
    cap = pending["cap"].fill_null(-1).to_numpy()[starts][cap_group]
    limits = np.array([rule.limit for rule in rules.caps] + [0], dtype=np.int64)
    windows = [rule.window_days * MICROSECONDS_PER_DAY for rule in rules.caps] + [0]
    beyond = np.array([rule.triggers_beyond_cap for rule in rules.caps] + [False])
    offers = pending["offer_type"].drop_nulls().unique().sort()
    offer_code = (
        pending["offer_type"]
        .replace_strict(offers, pl.int_range(offers.len(), eager=True), default=-1)
        .fill_null(-1)
        .cast(pl.Int64)
        .to_numpy()
    )
    is_trigger = (pending["kind"] == CandidateKind.TRIGGER.value).to_numpy()
    arrays = {
        "_member": member,
        "_first": first,
        "_cap_group": cap_group,
        "_round": np.arange(member.size) - starts[cap_group],
        "_at": pending["send_at"].dt.epoch("us").to_numpy(),
        "_expires": pending["expires_at"].dt.epoch("us").fill_null(NO_EXPIRY).to_numpy(),
        "_offer_group": np.where(
            offer_code >= 0, cap_group * max(offers.len(), 1) + offer_code, -1
        ),
        "_limit": limits[cap],
        "_window": np.array(windows, dtype=np.int64)[cap],
        "_beyond": beyond[cap],
    }
    arrays["_capped"] = (arrays["_limit"] > 0) & ~(is_trigger & arrays["_beyond"])
    return arrays, offers


def member_positions(member_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each of `wanted` in the ascending, distinct `member_ids`, or -1 where absent."""
    if member_ids.size == 0:
        return np.full(wanted.size, -1, dtype=np.int64)
    low, high = int(member_ids[0]), int(member_ids[-1])
    if high - low < DIRECT_LOOKUP_SPAN * (member_ids.size + wanted.size):
        # Ids from a database sequence are dense: a table indexed by id answers in one step.
        table = np.full(high - low + 1, -1, dtype=np.int64)
        table[member_ids - low] = np.arange(member_ids.size)
        inside = (wanted >= low) & (wanted <= high)
        return np.where(inside, table[np.where(inside, wanted - low, 0)], -1)
    found = np.searchsorted(member_ids, wanted).clip(0, member_ids.size - 1)
    return np.where(member_ids[found] == wanted, found, -1)


def _history_timelines(
    arrays: dict[str, np.ndarray], offers: pl.Series, *, history: pl.DataFrame, rules: PolicyRules
) -> tuple[Timeline, Timeline]:
    """The counted history of the members in play: one timeline for caps, one for offers."""
    first = arrays["_first"]
    member_ids = arrays["_member"][first]  # ascending: the candidates are in queue order
    at = arrays["_at"]
    expires = arrays["_expires"]
    earliest = int(at.min())
    longest = max((rule.window_days for rule in rules.caps), default=0)
    since = earliest - max(longest, rules.offer_cooldown_days) * MICROSECONDS_PER_DAY
    sent = pl.col("sent_at").dt.epoch("us")
    recent = (
        history.lazy()
        .filter((sent > since) & pl.col("member_id").is_not_null())
        .select(
            member_id="member_id",
            sent=sent,
            marketing=pl.col("kind") == CandidateKind.MARKETING.value,
            trigger=pl.col("kind") == CandidateKind.TRIGGER.value,
            offer=pl.col("offer_type")
            .replace_strict(
                offers, pl.int_range(offers.len(), eager=True), default=-1, return_dtype=pl.Int64
            )
            .fill_null(-1),
        )
        .collect()
    )
    groups = member_positions(member_ids, recent["member_id"].to_numpy())
    ours = groups >= 0
    groups = groups[ours]
    times = recent["sent"].to_numpy()[ours]
    marketing = recent["marketing"].to_numpy()[ours]
    trigger = recent["trigger"].to_numpy()[ours]
    offer = recent["offer"].to_numpy()[ours]
    beyond = arrays["_beyond"][first][groups]
    counted = (marketing | (trigger & ~beyond)) & (arrays["_limit"][first][groups] > 0)
    offered = (marketing | trigger) & (offer >= 0)
    offer_groups = groups * max(offers.len(), 1) + offer
    finite = expires[expires < NO_EXPIRY]
    latest = max(int(at.max()), int(finite.max()) if finite.size else 0) + MICROSECONDS_PER_DAY
    return (
        Timeline.build(
            groups[counted],
            times[counted],
            group_count=member_ids.size,
            extent=(since, latest),
        ),
        Timeline.build(
            offer_groups[offered],
            times[offered],
            group_count=member_ids.size * max(offers.len(), 1),
            extent=(since, latest),
        ),
    )


def _round_of(arrays: dict[str, np.ndarray], index: np.ndarray) -> _Round:
    return _Round(
        rows=index,
        cap_group=arrays["_cap_group"][index],
        offer_group=arrays["_offer_group"][index],
        times=arrays["_at"][index],
        expires=arrays["_expires"][index],
        capped=arrays["_capped"][index],
        windows=arrays["_window"][index],
        limits=arrays["_limit"][index],
    )


def _deferral_points(
    state: _State, each: _Round, losers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(loser, time) pairs: each moment one of the loser's counted messages leaves a window."""
    groups = each.cap_group[losers]
    windows = each.windows[losers]
    low = state.caps.position(groups, each.times[losers] - windows, after=True)
    high = np.where(each.capped[losers], state.caps.group_end(groups), low)
    query, element = expand(low, high)
    cap_points = state.caps.times[element] + windows[query]
    offer_groups = each.offer_group[losers]
    low = state.offers.position(offer_groups, each.times[losers] - state.cooldown, after=True)
    high = np.where(offer_groups >= 0, state.offers.group_end(offer_groups), low)
    offer_query, offer_element = expand(low, high)
    offer_points = state.offers.times[offer_element] + state.cooldown
    return (
        losers[np.concatenate([query, offer_query])],
        np.concatenate([cap_points, offer_points]),
    )


def _defer(
    state: _State, each: _Round, losers: np.ndarray, *, where: pl.DataFrame, rules: PolicyRules
) -> np.ndarray:
    """The earliest time each loser fits within its window before expiry, or -1."""
    index, points = _deferral_points(state, each, losers)
    # A window opens at or after its point, so points past the expiry cannot help.
    timely = points <= each.expires[index]
    index, points = index[timely], points[timely]
    best = np.full(each.rows.size, NO_EXPIRY, dtype=np.int64)
    if index.size:
        at = pl.from_epoch(pl.Series(points), time_unit="us").dt.replace_time_zone("UTC")
        opened = open_times(where[each.rows[index]].with_columns(at=at), rules=rules)
        opens = opened["opens_at"].dt.epoch("us").to_numpy()
        usable = (opens > each.times[index]) & (opens <= each.expires[index])
        index, opens = index[usable], opens[usable]
        fits = state.fits(each, opens, index)
        np.minimum.at(best, index[fits], opens[fits])
    return np.where(best[losers] == NO_EXPIRY, -1, best[losers])


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


def schedule(pending: pl.DataFrame, *, history: pl.DataFrame, rules: PolicyRules) -> Scheduled:
    """Applies caps and cool-downs to promotional candidates given in queue order.

    `pending` holds `member_id`, `kind`, `offer_type`, `send_at` (the window's opening),
    `expires_at`, `timezone` and `cap` (index into `rules.caps`, or null), sorted by member
    and, within a member, most urgent first (priority, then time).
    """
    times = np.full(pending.height, -1, dtype=np.int64)
    reasons = np.full(pending.height, -1, dtype=np.int8)
    if pending.height == 0:
        return Scheduled(times=times, reasons=reasons)
    arrays, offer_types = _prepare(pending, rules=rules)
    history_caps, offers = _history_timelines(arrays, offer_types, history=history, rules=rules)
    cooldown = rules.offer_cooldown_days * MICROSECONDS_PER_DAY
    state = _State(caps=history_caps, history_caps=history_caps, offers=offers, cooldown=cooldown)
    where = pending.select("kind", "timezone")
    rounds = arrays["_round"]
    if rounds.max() < np.iinfo(np.uint16).max:
        rounds = rounds.astype(np.uint16)  # small integers sort stably in linear time
    by_round = np.argsort(rounds, kind="stable")
    bounds = np.searchsorted(rounds[by_round], np.arange(int(rounds.max()) + 2))
    for low, high in itertools.pairwise(bounds):
        each = _round_of(arrays, by_round[low:high])
        final = np.where(state.fits(each, each.times), each.times, -1)
        losers = np.flatnonzero(final < 0)
        if losers.size:
            reasons[each.rows[losers]] = _reasons(state, each, losers)
            final[losers] = _defer(state, each, losers, where=where, rules=rules)
        times[each.rows] = final
        going = final >= 0
        counted = going & each.capped
        # The history's own timeline is read again for reasons: the first merge copies it.
        owned = state.caps is not state.history_caps
        state.caps = state.caps.add(each.cap_group[counted], final[counted], in_place=owned)
        offered = going & (each.offer_group >= 0)
        state.offers = state.offers.add(each.offer_group[offered], final[offered], in_place=True)
    return Scheduled(times=times, reasons=reasons)
