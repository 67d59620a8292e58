"""The shortcuts a large decision takes decide as the general paths do.

Dense member ids are found through a table and sorted on one packed key; ids spread over the
integer range take a search and a three-column sort. A zone whose offset holds is shifted by
arithmetic; near a DST change the timezone database answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tidings.policy.decide import decide

from .conftest import default_rules

NOW = datetime(2025, 11, 20, 1, 30, tzinfo=UTC)
OFFERS = pl.Series(["coupon", "points", None], dtype=pl.String)
SUPPRESSIONS = pl.DataFrame(
    {"phone_hash": ["h3", "h4"], "reason": ["opted_out", "complained"]},
)


def busy_day(*, members: int, rows: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Candidates and a month of history for a few members, so caps and cool-downs bind."""
    rng = np.random.default_rng(seed)
    member = rng.integers(0, members, rows)
    kinds = np.array(["marketing", "trigger", "transactional"])[rng.integers(0, 3, rows)]
    # Whole hours, so that a member's candidates often tie on priority and time.
    desired = NOW + pl.Series(rng.integers(0, 36, rows)) * timedelta(hours=1)
    candidates = pl.DataFrame(
        {
            "member_id": member,
            "phone_hash": np.char.add("h", member.astype(str)),
            "kind": kinds,
            "campaign_id": rng.integers(1, 4, rows),
            "offer_type": OFFERS.gather(rng.integers(0, 3, rows)),
            "priority": rng.choice([100, 100, 150], rows),  # ties broken by time, then order
            "desired_at": desired,
            "expires_at": desired + timedelta(days=3),
            "consent": rng.random(rows) > 0.1,
            "tier": np.array(["bronze", "gold"])[rng.integers(0, 2, rows)][member % 2],
            "timezone": np.array(["Asia/Shanghai", "America/Los_Angeles"])[member % 2],
        },
    ).with_columns(campaign_id=pl.when(pl.col("kind") == "marketing").then("campaign_id"))
    past = rows * 2
    history = pl.DataFrame(
        {
            "member_id": rng.integers(0, members, past),
            "kind": np.array(["marketing", "trigger"])[rng.integers(0, 2, past)],
            "offer_type": OFFERS.gather(rng.integers(0, 3, past)),
            "sent_at": NOW - pl.Series(rng.integers(1, 40 * 24 * 60, past)) * timedelta(minutes=1),
        },
    )
    return candidates, history


@pytest.mark.parametrize("seed", [1, 2])
def test_decisions_do_not_depend_on_how_members_are_numbered(seed: int) -> None:
    rules = default_rules()
    candidates, history = busy_day(members=40, rows=300, seed=seed)
    dense = decide(candidates, history=history, suppressions=SUPPRESSIONS, rules=rules, now=NOW)
    spread_id = (pl.col("member_id") - 20) * 2**56 + 7  # far apart, some negative
    spread = decide(
        candidates.with_columns(member_id=spread_id),
        history=history.with_columns(member_id=spread_id),
        suppressions=SUPPRESSIONS,
        rules=rules,
        now=NOW,
    )
    outcome = ["decision", "send_at", "reason"]
    assert dense.select(outcome).equals(spread.select(outcome))
    assert dense["reason"].is_in(["frequency_cap", "offer_cooldown"]).any()
    assert (dense["decision"] == "send").any()


@pytest.mark.parametrize(
    ("evening", "next_morning"),
    [
        # 21:00 PST on 8 March; 08:00 the next morning is PDT, seven hours behind UTC.
        (datetime(2025, 3, 9, 5, 0, tzinfo=UTC), datetime(2025, 3, 9, 15, 0, tzinfo=UTC)),
        # 21:00 PDT on 1 November; 08:00 the next morning is PST, eight hours behind UTC.
        (datetime(2025, 11, 2, 4, 0, tzinfo=UTC), datetime(2025, 11, 2, 16, 0, tzinfo=UTC)),
        # Far from any change the offset simply holds.
        (datetime(2025, 7, 10, 4, 0, tzinfo=UTC), datetime(2025, 7, 10, 15, 0, tzinfo=UTC)),
    ],
)
def test_an_evening_alone_opens_the_next_local_morning_around_a_dst_change(
    evening: datetime, next_morning: datetime
) -> None:
    candidate = pl.DataFrame(
        {
            "member_id": [1],
            "phone_hash": ["p1"],
            "kind": ["marketing"],
            "desired_at": [evening],
            "consent": [True],
            "timezone": ["America/Los_Angeles"],
        }
    )
    history = pl.DataFrame(
        schema={"member_id": pl.Int64, "kind": pl.String, "sent_at": pl.Datetime("us", "UTC")}
    )
    rules = default_rules()
    decided = decide(
        candidate, history=history, suppressions=SUPPRESSIONS, rules=rules, now=evening
    )
    row = decided.row(0, named=True)
    assert (row["decision"], row["send_at"]) == ("defer", next_morning)


def test_candidates_tied_on_member_priority_and_time_keep_their_input_order() -> None:
    rows = 3000
    members = np.arange(rows) % 3
    candidates = pl.DataFrame(
        {
            "member_id": members,
            "phone_hash": np.char.add("p", members.astype(str)),
            "kind": ["marketing"] * rows,
            "campaign_id": [1] * rows,
            "desired_at": [NOW + timedelta(hours=2)] * rows,
            "consent": [True] * rows,
        }
    )
    history = pl.DataFrame(
        schema={"member_id": pl.Int64, "kind": pl.String, "sent_at": pl.Datetime("us", "UTC")}
    )
    rules = default_rules()
    decided = decide(candidates, history=history, suppressions=SUPPRESSIONS, rules=rules, now=NOW)
    first_of_each = decided.head(3)["reason"].to_list()
    assert first_of_each == [None, None, None]
    assert (decided["reason"].tail(rows - 3) == "duplicate_in_campaign").all()
