"""The one decision: which candidate messages may be sent and when, and why not for the rest.

Checks run in this order, and the first that stops a message gives its reason: suppression
(erased, invalid phone, complained; opted out for marketing and triggers), consent for
marketing and triggers, one message per member per campaign (and per trigger in one run),
the send window and quiet hours (a message that could only go after it expires is skipped),
then frequency caps and offer cool-downs in priority order (`policy.caps`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from tidings import clock
from tidings.members.models import SuppressionReason
from tidings.policy.caps import schedule
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
    return frame.with_row_index("_row")


def _suppression_flags(suppressions: pl.DataFrame) -> pl.DataFrame:
    frame = _conform(suppressions, required=SUPPRESSION_SCHEMA, optional={}, name="suppressions")
    known = {reason.value for reason in SuppressionReason}
    _check_values(frame, column="reason", known=known, name="suppressions")
    return frame.group_by("phone_hash").agg(
        [
            (pl.col("reason") == reason.value).any().alias(f"_{reason.value}")
            for reason in SuppressionReason
        ]
    )


def _first_reason() -> pl.Expr:
    """The reason a candidate is stopped before any timing rule, or null."""
    promotional = pl.col("kind").is_in([k.value for k in PROMOTIONAL_KINDS])
    order = [-pl.col("priority"), pl.col("desired_at"), pl.col("_row")]
    campaign_rank = pl.int_range(pl.len()).over(["member_id", "campaign_id"], order_by=order)
    trigger_rank = pl.int_range(pl.len()).over(["member_id", "trigger_id"], order_by=order)
    has_campaign = pl.col("campaign_id").is_not_null()
    is_trigger = (pl.col("kind") == CandidateKind.TRIGGER.value) & pl.col(
        "trigger_id"
    ).is_not_null()
    return (
        pl.when(pl.col("_erased"))
        .then(pl.lit(SkipReason.ERASED.value))
        .when(pl.col("_invalid"))
        .then(pl.lit(SkipReason.INVALID_PHONE.value))
        .when(pl.col("_complained"))
        .then(pl.lit(SkipReason.COMPLAINED.value))
        .when(promotional & pl.col("_opted_out"))
        .then(pl.lit(SkipReason.OPTED_OUT.value))
        .when(promotional & ~pl.col("consent"))
        .then(pl.lit(SkipReason.NO_CONSENT.value))
        .when(has_campaign & (pl.col("_sent_before") | (campaign_rank > 0)))
        .then(pl.lit(SkipReason.DUPLICATE_IN_CAMPAIGN.value))
        .when(is_trigger & (trigger_rank > 0))
        .then(pl.lit(SkipReason.DUPLICATE_IN_TRIGGER.value))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _with_gates(
    frame: pl.DataFrame, *, history: pl.DataFrame, suppressions: pl.DataFrame
) -> pl.DataFrame:
    """Joins suppressions and earlier campaign messages, then names each gate's reason."""
    flags = _suppression_flags(suppressions)
    sent = (
        history.filter(pl.col("campaign_id").is_not_null())
        .select("member_id", "campaign_id")
        .unique()
        .with_columns(_sent_before=pl.lit(True))
    )
    joined = frame.join(flags, on="phone_hash", how="left").join(
        sent, on=["member_id", "campaign_id"], how="left"
    )
    gates = ["_sent_before", *(f"_{reason.value}" for reason in SuppressionReason)]
    joined = joined.with_columns(pl.col(gates).fill_null(False))
    return joined.with_columns(_gate=_first_reason()).drop(gates)


def _with_windows(frame: pl.DataFrame, *, rules: PolicyRules, now: datetime) -> pl.DataFrame:
    """Adds the first time each open candidate may go (`_opens_at`) and why it moved."""
    moment = pl.lit(now.astimezone(UTC)).cast(UTC_TIME)
    asked = pl.max_horizontal(pl.col("desired_at"), moment)
    open_rows = frame.filter(pl.col("_gate").is_null()).select("_row", "kind", "timezone", at=asked)
    opened = open_times(open_rows, rules=rules).select(
        "_row", _asked_at="at", _opens_at="opens_at", _moved_by="moved_by"
    )
    frame = frame.join(opened, on="_row", how="left")
    expired = pl.col("expires_at").is_not_null() & (pl.col("_opens_at") > pl.col("expires_at"))
    return frame.with_columns(
        _gate=pl.when(expired).then(pl.lit(SkipReason.EXPIRED.value)).otherwise(pl.col("_gate"))
    )


def _with_caps(frame: pl.DataFrame, *, history: pl.DataFrame, rules: PolicyRules) -> pl.DataFrame:
    """Adds the time and reason caps and cool-downs give each open promotional candidate."""
    promotional = pl.col("kind").is_in([k.value for k in PROMOTIONAL_KINDS])
    pending = frame.filter(pl.col("_gate").is_null() & promotional).select(
        "_row",
        "member_id",
        "kind",
        "priority",
        "offer_type",
        "expires_at",
        "timezone",
        send_at="_opens_at",
        cap=rules.cap_index(),
    )
    scheduled = schedule(pending, history=history, rules=rules).rename(
        {"send_at": "_capped_at", "reason": "_cap_reason"}
    )
    return frame.join(scheduled, on="_row", how="left")


def _outcome(frame: pl.DataFrame) -> pl.DataFrame:
    """Turns gates, windows and caps into `decision`, `send_at` and `reason`."""
    promotional = pl.col("kind").is_in([k.value for k in PROMOTIONAL_KINDS])
    send_at = pl.when(promotional).then(pl.col("_capped_at")).otherwise(pl.col("_opens_at"))
    skipped = pl.col("_gate").is_not_null() | send_at.is_null()
    moved_by_caps = pl.col("_capped_at") > pl.col("_opens_at")
    reason = (
        pl.when(pl.col("_gate").is_not_null())
        .then(pl.col("_gate"))
        .when(pl.col("_cap_reason").is_not_null())
        .then(pl.col("_cap_reason"))
        .otherwise(pl.col("_moved_by"))
    )
    decision = (
        pl.when(skipped)
        .then(pl.lit(Decision.SKIP))
        .when(moved_by_caps.fill_null(False) | pl.col("_moved_by").is_not_null())
        .then(pl.lit(Decision.DEFER))
        .otherwise(pl.lit(Decision.SEND))
    )
    return frame.with_columns(
        decision=decision, send_at=pl.when(~skipped).then(send_at), reason=reason
    )


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
    frame = _with_gates(frame, history=past, suppressions=suppressions)
    frame = _with_windows(frame, rules=rules, now=now)
    frame = _with_caps(frame, history=past, rules=rules)
    helpers = ["_row", "_gate", "_asked_at", "_opens_at", "_moved_by", "_capped_at", "_cap_reason"]
    return _outcome(frame).sort("_row").drop(helpers)
