"""The one decision: which candidate messages may be sent and when, and why not for the rest.

Checks run in this order, and the first that stops a message gives its reason: suppression
(erased, invalid phone, complained; opted out for marketing and triggers), consent for
marketing and triggers, one message per member per campaign (and per trigger in one run),
the send window and quiet hours (a message that could only go after it expires is skipped),
then frequency caps and offer cool-downs in priority order (`policy.caps`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from tidings import clock
from tidings.members.models import SuppressionReason
from tidings.policy.caps import reason_names, schedule
from tidings.policy.reasons import SkipReason
from tidings.policy.rules import (
    PRIORITY_BY_KIND,
    PROMOTIONAL_KINDS,
    CandidateKind,
    PolicyError,
    PolicyRules,
    check_timezone,
)
from tidings.policy.windows import open_times

UTC_TIME = pl.Datetime("us", "UTC")
Schema = dict[str, pl.DataType]
CANDIDATE_REQUIRED: Schema = {
    "member_id": pl.Int64(),
    "phone_hash": pl.String(),
    "kind": pl.String(),
    "desired_at": UTC_TIME,
}
CANDIDATE_OPTIONAL: Schema = {
    "campaign_id": pl.Int64(),
    "trigger_id": pl.Int64(),
    "offer_type": pl.String(),
    "priority": pl.Int32(),
    "expires_at": UTC_TIME,
    "consent": pl.Boolean(),
    "tier": pl.String(),
    "lifecycle_stage": pl.String(),
    "timezone": pl.String(),
}
HISTORY_REQUIRED: Schema = {"member_id": pl.Int64(), "kind": pl.String(), "sent_at": UTC_TIME}
HISTORY_OPTIONAL: Schema = {
    "campaign_id": pl.Int64(),
    "trigger_id": pl.Int64(),
    "offer_type": pl.String(),
}
SUPPRESSION_SCHEMA: Schema = {"phone_hash": pl.String(), "reason": pl.String()}
DECISION_SCHEMA: Schema = {"decision": pl.String(), "send_at": UTC_TIME, "reason": pl.String()}
PACKED_KEY_BITS = 63  # bits of a non-negative int64 sort key


class Decision:
    """The three outcomes of a decision (plain strings in frames)."""

    SEND = "send"
    DEFER = "defer"
    SKIP = "skip"


def _conform(
    frame: pl.DataFrame,
    *,
    required: Schema,
    optional: Schema,
    name: str,
) -> pl.DataFrame:
    """Checks required columns, adds missing optional ones as nulls and casts to the schema."""
    missing = [column for column in required if column not in frame.columns]
    if missing and frame.height == 0:
        return pl.DataFrame(schema={**required, **optional})
    if missing:
        raise PolicyError(f"{name} lack column(s) {', '.join(missing)}; every row needs them")
    casts = []
    for column, dtype in {**required, **optional}.items():
        if column not in frame.columns:
            casts.append(pl.lit(None, dtype=dtype).alias(column))
        elif dtype == UTC_TIME:
            current = frame.schema[column]
            if isinstance(current, pl.Datetime) and current.time_zone is None:
                raise PolicyError(
                    f"{name}: '{column}' holds times without a timezone; give them in UTC"
                )
            if current != pl.Null and not isinstance(current, pl.Datetime):
                raise PolicyError(f"{name}: '{column}' must hold times, not {current}")
            if isinstance(current, pl.Datetime):
                utc = pl.col(column).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
                casts.append(utc.alias(column))
            else:
                casts.append(pl.col(column).cast(UTC_TIME).alias(column))
        else:
            casts.append(pl.col(column).cast(dtype).alias(column))
    return frame.with_columns(casts)


def _check_values(frame: pl.DataFrame, *, column: str, known: set[str], name: str) -> None:
    unknown = sorted(set(frame[column].drop_nulls().unique().to_list()) - known)
    if unknown or frame[column].null_count():
        shown = ", ".join(repr(value) for value in unknown) or "empty values"
        raise PolicyError(
            f"{name}: '{column}' holds {shown}; use one of {', '.join(sorted(known))}"
        )


def _candidates(candidates: pl.DataFrame, *, rules: PolicyRules) -> pl.DataFrame:
    frame = _conform(
        candidates, required=CANDIDATE_REQUIRED, optional=CANDIDATE_OPTIONAL, name="candidates"
    )
    _check_values(frame, column="kind", known={k.value for k in CandidateKind}, name="candidates")
    by_kind = pl.col("kind").replace_strict(
        [k.value for k in PRIORITY_BY_KIND],
        list(PRIORITY_BY_KIND.values()),
        return_dtype=pl.Int32(),
    )
    frame = frame.with_columns(
        priority=pl.col("priority").fill_null(by_kind),
        consent=pl.col("consent").fill_null(False),
        timezone=pl.col("timezone").fill_null(pl.lit(rules.default_timezone)),
    )
    for name in frame["timezone"].unique().to_list():
        check_timezone(name, setting="candidates: member timezone")
    return frame


def _suppressed(suppressions: pl.DataFrame) -> dict[str, pl.Series]:
    """The suppressed phone hashes, by suppression reason."""
    frame = _conform(suppressions, required=SUPPRESSION_SCHEMA, optional={}, name="suppressions")
    known = {reason.value for reason in SuppressionReason}
    _check_values(frame, column="reason", known=known, name="suppressions")
    return {
        reason.value: frame.filter(pl.col("reason") == reason.value)["phone_hash"]
        for reason in SuppressionReason
    }


def _packed_key(frame: pl.DataFrame) -> np.ndarray | None:
    """Member, priority (highest first) and desired time packed into one integer, if they fit."""
    columns = frame.select("member_id", "priority", desired=pl.col("desired_at").dt.epoch("us"))
    if frame.height == 0 or any(columns.null_count().row(0)):
        return None
    member, priority, desired = (columns[name].to_numpy() for name in columns.columns)
    priorities = np.unique(priority)
    urgency = priorities.size - 1 - np.searchsorted(priorities, priority)
    low_member, low_desired = int(member.min()), int(desired.min())
    spans = (int(member.max()) - low_member, priorities.size - 1, int(desired.max()) - low_desired)
    bits = [max(span.bit_length(), 1) for span in spans]
    if sum(bits) > PACKED_KEY_BITS:
        return None
    key = (member.astype(np.int64) - low_member) << (bits[1] + bits[2])
    key |= urgency.astype(np.int64) << bits[2]
    return key | (desired - low_desired)


def _stable_order(key: np.ndarray) -> np.ndarray:
    """Positions that sort `key`, equal keys in input order (a fast sort, then ties mended)."""
    order = np.argsort(key)
    ordered = key[order]
    tied = np.zeros(order.size, dtype=bool)
    same = ordered[1:] == ordered[:-1]
    tied[1:] |= same
    tied[:-1] |= same
    rows = np.flatnonzero(tied)
    if rows.size:
        # The tied rows hold whole runs of equal keys: sorted by key, then position, each run
        # returns to its own places in input order.
        order[rows] = order[rows][np.lexsort((order[rows], ordered[rows]))]
    return order


def _queue_order(frame: pl.DataFrame) -> np.ndarray:
    """Row positions by member, then priority (highest first), then desired time, then input."""
    key = _packed_key(frame)
    if key is not None:
        return _stable_order(key)
    order = frame.select(
        pl.arg_sort_by(
            ["member_id", "priority", "desired_at"],
            descending=[False, True, False],
            maintain_order=True,
        )
    )
    return order.to_series().to_numpy()


def _pair_keys(work: pl.DataFrame, column: str, *, member: np.ndarray) -> pl.Expr:
    """One integer per (member, value of `column`): member position times distinct values."""
    values = work[column].drop_nulls().unique().sort()
    code = pl.col(column).replace_strict(
        values, pl.int_range(values.len(), eager=True), default=None, return_dtype=pl.Int64
    )
    return pl.lit(pl.Series(member)) * max(values.len(), 1) + code


# The gates in the order they are checked; the first that stops a candidate is its reason.
GATES = (
    SkipReason.ERASED,
    SkipReason.INVALID_PHONE,
    SkipReason.COMPLAINED,
    SkipReason.OPTED_OUT,
    SkipReason.NO_CONSENT,
    SkipReason.DUPLICATE_IN_CAMPAIGN,
    SkipReason.DUPLICATE_IN_TRIGGER,
)


def _first_reason(*, repeated_campaign: pl.Expr, repeated_trigger: pl.Expr) -> pl.Expr:
    """The reason a candidate is stopped before any timing rule, or null."""
    promotional = pl.col("kind").is_in([k.value for k in PROMOTIONAL_KINDS])
    is_trigger = pl.col("kind") == CandidateKind.TRIGGER.value
    stops = {
        SkipReason.ERASED: pl.col("_erased"),
        SkipReason.INVALID_PHONE: pl.col("_invalid"),
        SkipReason.COMPLAINED: pl.col("_complained"),
        SkipReason.OPTED_OUT: promotional & pl.col("_opted_out"),
        SkipReason.NO_CONSENT: promotional & ~pl.col("consent"),
        SkipReason.DUPLICATE_IN_CAMPAIGN: pl.col("campaign_id").is_not_null() & repeated_campaign,
        SkipReason.DUPLICATE_IN_TRIGGER: (
            is_trigger & pl.col("trigger_id").is_not_null() & repeated_trigger
        ),
    }
    # Chosen as small integers, named once: far cheaper than a chain of text columns.
    code: pl.Expr = pl.lit(None, dtype=pl.Int8)
    for position, gate in reversed(list(enumerate(GATES))):
        code = pl.when(stops[gate]).then(pl.lit(position, dtype=pl.Int8)).otherwise(code)
    return code.replace_strict(
        list(range(len(GATES))),
        [gate.value for gate in GATES],
        default=None,
        return_dtype=pl.String,
    )


def _with_gates(
    work: pl.DataFrame, *, history: pl.DataFrame, suppressions: pl.DataFrame
) -> pl.DataFrame:
    """Names the first gate that stops each candidate: suppression, consent or a duplicate.

    `work` is in queue order, so a member's rows are together and the first of a member's
    candidates for one campaign (or trigger) is the one that goes.
    """
    ids = work["member_id"].to_numpy()
    first = np.concatenate([[True], ids[1:] != ids[:-1]])
    member = np.cumsum(first) - 1
    campaign_key = _pair_keys(work, "campaign_id", member=member)
    members = ids[first]  # ascending, one each
    earlier = history.filter(
        pl.col("campaign_id").is_in(work["campaign_id"].drop_nulls().unique().implode())
    ).filter(pl.col("member_id").is_in(pl.Series(members).implode()))
    earlier_member = np.searchsorted(members, earlier["member_id"].to_numpy())
    sent_keys = earlier.select(_pair_keys(work, "campaign_id", member=earlier_member)).to_series()
    flags = {
        f"_{reason}": pl.col("phone_hash").is_in(hashes.implode())
        for reason, hashes in _suppressed(suppressions).items()
    }
    repeated_campaign = ~campaign_key.is_first_distinct() | campaign_key.is_in(sent_keys.implode())
    repeated_trigger = ~_pair_keys(work, "trigger_id", member=member).is_first_distinct()
    gate = _first_reason(repeated_campaign=repeated_campaign, repeated_trigger=repeated_trigger)
    return work.with_columns(**flags).with_columns(_gate=gate).drop(list(flags))


def _with_windows(work: pl.DataFrame, *, rules: PolicyRules, now: datetime) -> pl.DataFrame:
    """Adds the first time each candidate may go (`_opens_at`), why it moved, and expiry."""
    moment = pl.lit(now.astimezone(UTC)).cast(UTC_TIME)
    asked = pl.max_horizontal(pl.col("desired_at"), moment)
    opened = open_times(work.select("kind", "timezone", at=asked), rules=rules)
    work = work.with_columns(_opens_at=opened["opens_at"], _moved_by=opened["moved_by"])
    expired = pl.col("expires_at").is_not_null() & (pl.col("_opens_at") > pl.col("expires_at"))
    return work.with_columns(
        _gate=pl.when(pl.col("_gate").is_null() & expired)
        .then(pl.lit(SkipReason.EXPIRED.value))
        .otherwise(pl.col("_gate"))
    )


def _with_caps(work: pl.DataFrame, *, history: pl.DataFrame, rules: PolicyRules) -> pl.DataFrame:
    """Adds the time and reason caps and cool-downs give each open promotional candidate."""
    promotional = pl.col("kind").is_in([k.value for k in PROMOTIONAL_KINDS])
    mask = work.select(pl.col("_gate").is_null() & promotional).to_series().to_numpy()
    index = np.flatnonzero(mask)
    pending = work.select(
        "member_id",
        "kind",
        "offer_type",
        "expires_at",
        "timezone",
        send_at="_opens_at",
        cap=rules.cap_index(),
    )[index]
    scheduled = schedule(pending, history=history, rules=rules)
    capped_at = np.full(work.height, -1, dtype=np.int64)
    capped_at[index] = scheduled.times
    reason = np.full(work.height, -1, dtype=np.int8)
    reason[index] = scheduled.reasons
    return work.with_columns(_capped_at=_times_or_null(capped_at), _cap_reason=reason_names(reason))


def _outcome(work: pl.DataFrame) -> pl.DataFrame:
    """Turns gates, windows and caps into `decision`, `send_at` and `reason`."""
    promotional = pl.col("kind").is_in([k.value for k in PROMOTIONAL_KINDS])
    send_at = pl.when(promotional).then(pl.col("_capped_at")).otherwise(pl.col("_opens_at"))
    skipped = pl.col("_gate").is_not_null() | send_at.is_null()
    moved_by_caps = (pl.col("_capped_at") > pl.col("_opens_at")).fill_null(False)
    reason = pl.coalesce("_gate", "_cap_reason", "_moved_by")
    outcomes = [Decision.SEND, Decision.DEFER, Decision.SKIP]
    decision = (
        pl.when(skipped)
        .then(pl.lit(2, dtype=pl.Int8))
        .when(moved_by_caps | pl.col("_moved_by").is_not_null())
        .then(pl.lit(1, dtype=pl.Int8))
        .otherwise(pl.lit(0, dtype=pl.Int8))
        .replace_strict(list(range(len(outcomes))), outcomes, return_dtype=pl.String)
    )
    return work.select(decision=decision, send_at=pl.when(~skipped).then(send_at), reason=reason)


def _times_or_null(values: np.ndarray) -> pl.Series:
    """Microseconds since the epoch as UTC times; negative values become null."""
    series = pl.Series(values)
    times = pl.from_epoch(series, time_unit="us").dt.replace_time_zone("UTC")
    return pl.select(pl.when(series >= 0).then(times)).to_series()


def decide(
    candidates: pl.DataFrame,
    *,
    history: pl.DataFrame,
    suppressions: pl.DataFrame,
    rules: PolicyRules,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Decides for each candidate message: send (at `send_at`), defer (to it), or skip (why).

    Returns the candidates, rows in the order given, with their optional columns filled
    (priority from kind, consent false, timezone the default), plus `decision`
    (send/defer/skip), `send_at` (UTC, inside the kind's window; null when skipped) and
    `reason` (a SkipReason value: why skipped, or why deferred; null when sent as asked).
    """
    if now is None:
        now = clock.now()
    if now.tzinfo is None:
        raise PolicyError("now must be timezone-aware")
    frame = _candidates(candidates, rules=rules)
    past = _conform(history, required=HISTORY_REQUIRED, optional=HISTORY_OPTIONAL, name="history")
    # Every step below runs on the candidates in queue order; the answer goes back in input order.
    order = _queue_order(frame)
    work = frame[order]
    work = _with_gates(work, history=past, suppressions=suppressions)
    work = _with_windows(work, rules=rules, now=now)
    work = _with_caps(work, history=past, rules=rules)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return frame.hstack(_outcome(work)[inverse])
