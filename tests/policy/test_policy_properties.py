"""Properties of `decide` over generated members, histories and candidates.

Each property is checked against a plain-Python reading of the rules (zoneinfo for local
times, loops over a handful of messages), independent of the vectorised implementation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.policy.decide import decide

from .conftest import default_rules

NOW = datetime(2025, 11, 20, 3, 17, tzinfo=UTC)
ZONES = ["Asia/Shanghai", "Asia/Urumqi", "America/Los_Angeles", "Europe/London", None]
KINDS = ["marketing", "trigger", "transactional", "reply"]
OFFERS = ["coupon", "points", None]
RULES = default_rules()
PROMOTIONAL = {"marketing", "trigger"}
SUPPRESSIONS = pl.DataFrame(schema={"phone_hash": pl.String, "reason": pl.String})
MINUTE = timedelta(minutes=1)

members = st.fixed_dictionaries(
    {
        "tier": st.sampled_from(["bronze", "silver", "gold", None]),
        "stage": st.sampled_from(["new", "active", "dormant", None]),
        "zone": st.sampled_from(ZONES),
    }
)
past_messages = st.tuples(
    st.integers(0, 3),
    st.sampled_from(KINDS),
    st.sampled_from(OFFERS),
    st.integers(-5 * 24 * 60, 40 * 24 * 60),  # minutes before now; negative: planned
)
new_messages = st.tuples(
    st.integers(0, 3),
    st.sampled_from(KINDS),
    st.sampled_from([1, 2, 3, None]),
    st.sampled_from(OFFERS),
    st.integers(-120, 3 * 24 * 60),  # minutes after now
    st.one_of(st.none(), st.integers(0, 6 * 24 * 60)),  # minutes the message stays valid
)
scenarios = st.tuples(
    st.lists(members, min_size=4, max_size=4),
    st.lists(past_messages, max_size=14),
    st.lists(new_messages, min_size=1, max_size=14),
)


def build(scenario: tuple[list, list, list]) -> tuple[pl.DataFrame, pl.DataFrame]:
    people, past, new = scenario
    history = pl.DataFrame(
        {
            "member_id": [m for m, *_ in past],
            "kind": [kind for _, kind, _, _ in past],
            "campaign_id": [None] * len(past),
            "offer_type": [offer for _, _, offer, _ in past],
            "sent_at": [NOW - minutes * MINUTE for *_, minutes in past],
        },
        schema={
            "member_id": pl.Int64,
            "kind": pl.String,
            "campaign_id": pl.Int64,
            "offer_type": pl.String,
            "sent_at": pl.Datetime("us", "UTC"),
        },
    )
    rows = []
    for member, kind, campaign, offer, minutes, valid in new:
        desired = NOW + minutes * MINUTE
        rows.append(
            {
                "member_id": member,
                "phone_hash": f"p{member}",
                "kind": kind,
                "campaign_id": campaign if kind == "marketing" else None,
                "trigger_id": 9 if kind == "trigger" else None,
                "offer_type": offer,
                "desired_at": desired,
                "expires_at": None if valid is None else desired + valid * MINUTE,
                "consent": True,
                "tier": people[member]["tier"],
                "lifecycle_stage": people[member]["stage"],
                "timezone": people[member]["zone"],
            }
        )
    schema = {
        "campaign_id": pl.Int64,
        "trigger_id": pl.Int64,
        "offer_type": pl.String,
        "tier": pl.String,
        "lifecycle_stage": pl.String,
        "timezone": pl.String,
        "desired_at": pl.Datetime("us", "UTC"),
        "expires_at": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema_overrides=schema), history


def run(candidates: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    return decide(candidates, history=history, suppressions=SUPPRESSIONS, rules=RULES, now=NOW)


def going(decided: pl.DataFrame) -> list[dict]:
    return decided.filter(pl.col("decision") != "skip").to_dicts()


def local_minute(moment: datetime, zone: str | None) -> int:
    local = moment.astimezone(ZoneInfo(zone or RULES.default_timezone))
    return local.hour * 60 + local.minute


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(scenarios)
def test_send_at_is_inside_the_window_never_early_and_never_after_expiry(scenario) -> None:
    candidates, history = build(scenario)
    for row in going(run(candidates, history)):
        send_at = row["send_at"]
        assert send_at >= row["desired_at"] and send_at >= NOW
        assert row["expires_at"] is None or send_at <= row["expires_at"]
        minute = local_minute(send_at, row["timezone"])
        if row["kind"] in PROMOTIONAL:
            assert 8 * 60 <= minute < 20 * 60
        elif row["kind"] == "transactional":
            assert 8 * 60 <= minute < 22 * 60


def _counted(kind: str, rule_beyond: bool) -> bool:
    return kind == "marketing" or (kind == "trigger" and not rule_beyond)


@PROPERTY_SETTINGS
@given(scenarios)
def test_no_member_ever_exceeds_a_cap_or_a_cool_down(scenario) -> None:
    people, _past, _new = scenario
    candidates, history = build(scenario)
    new = going(run(candidates, history))
    for member, person in enumerate(people):
        rule = RULES.cap_for(tier=person["tier"], lifecycle_stage=person["stage"])
        old = [r for r in history.to_dicts() if r["member_id"] == member]
        mine = [r for r in new if r["member_id"] == member]
        if rule is not None:
            times = [r["sent_at"] for r in old if _counted(r["kind"], rule.triggers_beyond_cap)]
            added = [r["send_at"] for r in mine if _counted(r["kind"], rule.triggers_beyond_cap)]
            every = times + added
            for end in every:
                inside = [t for t in every if end - rule.window < t <= end]
                if any(end - rule.window < t <= end for t in added):
                    assert len(inside) <= rule.limit
        offers = [(r["offer_type"], r["sent_at"]) for r in old if r["kind"] in PROMOTIONAL]
        fresh = [(r["offer_type"], r["send_at"]) for r in mine if r["kind"] in PROMOTIONAL]
        for index, (offer, at) in enumerate(fresh):
            if offer is None:
                continue
            others = offers + fresh[:index] + fresh[index + 1 :]
            assert all(o != offer or abs(t - at) >= RULES.offer_cooldown for o, t in others)


@PROPERTY_SETTINGS
@given(scenarios)
def test_deciding_again_with_the_first_sends_in_history_sends_no_campaign_twice(scenario) -> None:
    candidates, history = build(scenario)
    first = run(candidates, history).filter(pl.col("decision") != "skip")
    planned = first.select(
        "member_id", "kind", "campaign_id", "offer_type", sent_at=pl.col("send_at")
    )
    again = run(candidates, pl.concat([history, planned]))
    campaigns = again.filter(pl.col("campaign_id").is_not_null())
    assert campaigns["decision"].to_list() == ["skip"] * campaigns.height
