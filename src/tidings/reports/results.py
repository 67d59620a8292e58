"""A campaign's results over Polars frames: what became of each message (sent, delivered,
clicked by a person, replied, opted out, complained, converted, revenue, cost), summed per
campaign, variant, store and day, with revenue per message and cost per conversion.

Opt-outs and complaints count for a message when they come within the outcome window after it
was sent (the click window of attribution, 7 days by default); converted and revenue are the
message's attributed orders.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from tidings.dispatch.models import MessageState

UTC_TIME = pl.Datetime("us", "UTC")
HOLDOUT = "holdout"
S = MessageState
# Taken by the provider (a message that expired may or may not have been: its submission
# time tells).
SENT_STATES = [s.value for s in (S.SUBMITTED, S.DELIVERED, S.UNKNOWN)]
COUNTS = (
    "planned",
    "sent",
    "delivered",
    "failed",
    "clicked",
    "replied",
    "opted_out",
    "complained",
    "converted",
)
FUNNEL_KEYS = (
    *COUNTS,
    "revenue_cents",
    "cost_cents",
    "revenue_per_message_cents",
    "cost_per_conversion_cents",
)
MESSAGES_SCHEMA: dict[str, pl.DataType] = {
    "message_id": pl.Int64(),
    "member_id": pl.Int64(),
    "phone_hash": pl.String(),
    "variant": pl.String(),
    "store_code": pl.String(),
    "state": pl.String(),
    "skip_reason": pl.String(),
    "cost_cents": pl.Int64(),
    "sent_at": UTC_TIME,
    "submitted_at": UTC_TIME,
}


def message_outcomes(
    messages: pl.DataFrame,
    *,
    clicks: pl.DataFrame,
    replies: pl.DataFrame,
    opt_outs: pl.DataFrame,
    complaints: pl.DataFrame,
    credits: pl.DataFrame,
    window: timedelta,
    timezone: str,
) -> pl.DataFrame:
    """One row per message of the campaign with its 0/1 outcomes, revenue, cost and local day.

    `clicks` (message_id) are people's; `replies` (message_id, intent); `opt_outs`
    (member_id, at); `complaints` (phone_hash, at); `credits` (message_id, revenue_cents).
    """
    state = pl.col("state")
    taken = pl.col("submitted_at").is_not_null()
    sent = state.is_in(SENT_STATES) | (taken & (state == S.EXPIRED.value))
    failed = (state == S.FAILED.value) | (taken & (state == S.EXPIRED.value))
    replied_to = replies.get_column("message_id")
    opted = _after_sending(messages, opt_outs, "member_id", window) + _replied_with(
        replies, "opt_out"
    )
    complained = _after_sending(messages, complaints, "phone_hash", window) + _replied_with(
        replies, "complaint"
    )
    earned = credits.group_by("message_id").agg(pl.col("revenue_cents").sum())
    return (
        messages.join(earned, on="message_id", how="left")
        .with_columns(
            (state != S.SKIPPED.value).alias("planned"),
            sent.alias("sent"),
            (state == S.DELIVERED.value).alias("delivered"),
            failed.alias("failed"),
            pl.col("message_id").is_in(clicks.get_column("message_id").implode()).alias("clicked"),
            pl.col("message_id").is_in(replied_to.implode()).alias("replied"),
            pl.col("message_id")
            .is_in(pl.Series(opted, dtype=pl.Int64).implode())
            .alias("opted_out"),
            pl.col("message_id")
            .is_in(pl.Series(complained, dtype=pl.Int64).implode())
            .alias("complained"),
            pl.col("revenue_cents").is_not_null().alias("converted"),
            pl.col("revenue_cents").fill_null(0),
            pl.col("sent_at").dt.convert_time_zone(timezone).dt.date().alias("day"),
        )
        .with_columns(pl.col(name).cast(pl.Int64) for name in COUNTS)
    )


def _after_sending(
    messages: pl.DataFrame, events: pl.DataFrame, key: str, window: timedelta
) -> list[int]:
    """Messages whose member (or phone) had such an event within `window` after the send."""
    sent = messages.filter(pl.col("submitted_at").is_not_null()).select(
        "message_id", key, "submitted_at"
    )
    after = pl.col("at") >= pl.col("submitted_at")
    within = pl.col("at") <= pl.col("submitted_at") + window
    matched = sent.join(events.select(key, "at"), on=key, how="inner").filter(after & within)
    return matched.get_column("message_id").unique().to_list()


def _replied_with(replies: pl.DataFrame, intent: str) -> list[int]:
    return replies.filter(pl.col("intent") == intent).get_column("message_id").unique().to_list()


def funnel_rows(outcomes: pl.DataFrame, by: list[str]) -> list[dict[str, Any]]:
    """The funnel per group of `by` (e.g. ["variant"]), sorted by it; skipped messages (the
    holdout among them) left out."""
    treated = outcomes.filter(pl.col("planned") == 1)
    if not by:
        totals = treated.select(_sums())
    else:
        totals = treated.group_by(by).agg(_sums()).sort(by, nulls_last=True)
    return [_with_ratios(row) for row in totals.to_dicts()]


def funnel(outcomes: pl.DataFrame) -> dict[str, Any]:
    """The campaign's whole funnel (one row of `funnel_rows`)."""
    rows = funnel_rows(outcomes, [])
    return rows[0] if rows else _with_ratios({})


def _sums() -> list[pl.Expr]:
    return [
        *(pl.col(name).sum().alias(name) for name in COUNTS),
        pl.col("revenue_cents").sum().alias("revenue_cents"),
        pl.col("cost_cents").sum().alias("cost_cents"),
    ]


def _with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    """Adds revenue per message sent and cost per conversion, in whole cents (None when
    nothing was sent, or nothing converted)."""
    out: dict[str, int | None] = {
        key: int(row.get(key) or 0) for key in (*COUNTS, "revenue_cents", "cost_cents")
    }
    revenue, cost = int(out["revenue_cents"] or 0), int(out["cost_cents"] or 0)
    sent, converted = int(out["sent"] or 0), int(out["converted"] or 0)
    out["revenue_per_message_cents"] = round(revenue / sent) if sent else None
    out["cost_per_conversion_cents"] = round(cost / converted) if converted else None
    extra = {key: value for key, value in row.items() if key not in out}
    return {**extra, **out}


def ab_arms(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Per variant: recipients (messages sent), people who clicked, members who converted."""
    return (
        outcomes.filter((pl.col("sent") == 1) & pl.col("variant").is_not_null())
        .group_by("variant")
        .agg(
            pl.len().cast(pl.Int64).alias("recipients"),
            pl.col("clicked").sum().cast(pl.Int64),
            pl.col("converted").sum().cast(pl.Int64),
        )
        .sort("variant")
    )


def lift_members(messages: pl.DataFrame, orders: pl.DataFrame) -> pl.DataFrame:
    """One row per member of the audience, treated (planned) or held out, with whether they
    ordered in the lift window and all they spent then: `orders` (member_id, amount_cents) are
    every order in that window, credited or not, since held-out members have no message."""
    audience = messages.filter(
        (pl.col("state") != S.SKIPPED.value) | (pl.col("skip_reason") == HOLDOUT)
    ).select("member_id", (pl.col("skip_reason").fill_null("") == HOLDOUT).alias("holdout"))
    spent = orders.group_by("member_id").agg(
        pl.len().alias("orders"), pl.col("amount_cents").sum().alias("revenue_cents")
    )
    return (
        audience.unique("member_id", keep="first")
        .join(spent, on="member_id", how="left")
        .select(
            "holdout",
            (pl.col("orders").fill_null(0) > 0).cast(pl.Int64).alias("converted"),
            pl.col("revenue_cents").fill_null(0).cast(pl.Int64),
        )
    )
