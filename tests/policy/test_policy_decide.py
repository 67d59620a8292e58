"""`decide`: each rule at its boundaries, as a planner would see the decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from tidings.policy.decide import decide
from tidings.policy.reasons import SkipReason
from tidings.policy.rules import PolicyError, PolicyRules, parse_caps

from .conftest import default_rules

NOW = datetime(2025, 11, 20, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, a Thursday
SHANGHAI = timedelta(hours=8)


def candidates(*rows: dict[str, object]) -> pl.DataFrame:
    """Candidate rows with sensible defaults: consenting member 1, marketing, campaign 1, now."""
    base: dict[str, object] = {
        "member_id": 1,
        "phone_hash": "p1",
        "kind": "marketing",
        "campaign_id": 1,
        "desired_at": NOW + timedelta(hours=2),
        "expires_at": NOW + timedelta(days=2),
        "consent": True,
        "timezone": None,
        "offer_type": None,
        "tier": None,
        "lifecycle_stage": None,
    }
    filled = [{**base, **row} for row in rows]
    return pl.DataFrame(
        filled,
        schema_overrides={
            "desired_at": pl.Datetime("us", "UTC"),
            "expires_at": pl.Datetime("us", "UTC"),
            "timezone": pl.String,
            "offer_type": pl.String,
            "tier": pl.String,
            "lifecycle_stage": pl.String,
            "campaign_id": pl.Int64,
        },
    )


def history(*rows: tuple[str, datetime] | tuple[str, datetime, str]) -> pl.DataFrame:
    """Earlier messages of member 1 as (kind, sent_at[, offer_type])."""
    return pl.DataFrame(
        {
            "member_id": [1] * len(rows),
            "kind": [row[0] for row in rows],
            "campaign_id": [100 + i for i in range(len(rows))],
            "offer_type": [row[2] if len(row) > 2 else None for row in rows],
            "sent_at": [row[1] for row in rows],
        },
        schema={
            "member_id": pl.Int64,
            "kind": pl.String,
            "campaign_id": pl.Int64,
            "offer_type": pl.String,
            "sent_at": pl.Datetime("us", "UTC"),
        },
    )


NO_HISTORY = history()
NO_SUPPRESSIONS = pl.DataFrame(schema={"phone_hash": pl.String, "reason": pl.String})


def run(
    frame: pl.DataFrame,
    rules: PolicyRules,
    *,
    past: pl.DataFrame = NO_HISTORY,
    suppressions: pl.DataFrame = NO_SUPPRESSIONS,
    now: datetime = NOW,
) -> list[dict[str, object]]:
    decided = decide(frame, history=past, suppressions=suppressions, rules=rules, now=now)
    return decided.select("member_id", "kind", "decision", "send_at", "reason").to_dicts()


def only(rows: list[dict[str, object]]) -> tuple[object, object, object]:
    assert len(rows) == 1
    return rows[0]["decision"], rows[0]["send_at"], rows[0]["reason"]


# Send windows and quiet hours, in the member's timezone.


@pytest.mark.parametrize(
    ("zone", "offset"),
    [("Asia/Urumqi", timedelta(hours=6)), ("America/Los_Angeles", timedelta(hours=-8))],
)
def test_19_59_local_goes_and_20_00_waits_for_next_morning(
    rules: PolicyRules, zone: str, offset: timedelta
) -> None:
    local_1959 = datetime(2025, 11, 20, 19, 59, tzinfo=UTC) - offset
    assert only(run(candidates({"desired_at": local_1959, "timezone": zone}), rules)) == (
        "send",
        local_1959,
        None,
    )
    local_2000 = local_1959 + timedelta(minutes=1)
    next_morning = datetime(2025, 11, 21, 8, 0, tzinfo=UTC) - offset
    decision = only(run(candidates({"desired_at": local_2000, "timezone": zone}), rules))
    assert decision == ("defer", next_morning, SkipReason.OUTSIDE_SEND_WINDOW)


def test_07_59_waits_a_minute_and_08_00_goes(rules: PolicyRules) -> None:
    at_0759 = datetime(2025, 11, 21, 7, 59, tzinfo=UTC) - SHANGHAI
    at_0800 = at_0759 + timedelta(minutes=1)
    assert only(run(candidates({"desired_at": at_0759}), rules)) == (
        "defer",
        at_0800,
        SkipReason.QUIET_HOURS,
    )
    assert only(run(candidates({"desired_at": at_0800}), rules)) == ("send", at_0800, None)


def test_the_next_morning_is_local_across_a_dst_change(rules: PolicyRules) -> None:
    # Los Angeles springs forward on 9 March 2025 and falls back on 2 November 2025.
    spring_evening = datetime(2025, 3, 9, 5, 0, tzinfo=UTC)  # 21:00 PST on 8 March
    fall_evening = datetime(2025, 11, 2, 4, 0, tzinfo=UTC)  # 21:00 PDT on 1 November
    frame = candidates(
        {"desired_at": spring_evening, "timezone": "America/Los_Angeles", "campaign_id": 1},
        {"desired_at": fall_evening, "timezone": "America/Los_Angeles", "campaign_id": 2},
    ).with_columns(expires_at=pl.col("desired_at") + timedelta(days=2))
    spring, fall = run(frame, rules, now=datetime(2025, 3, 1, tzinfo=UTC))
    assert spring["send_at"] == datetime(2025, 3, 9, 15, 0, tzinfo=UTC)  # 08:00 PDT
    assert fall["send_at"] == datetime(2025, 11, 2, 16, 0, tzinfo=UTC)  # 08:00 PST


def test_a_transactional_message_at_23_00_waits_for_morning_but_a_reply_does_not(
    rules: PolicyRules,
) -> None:
    at_2300 = datetime(2025, 11, 20, 23, 0, tzinfo=UTC) - SHANGHAI
    morning = datetime(2025, 11, 21, 8, 0, tzinfo=UTC) - SHANGHAI
    frame = candidates(
        {"kind": "transactional", "campaign_id": None, "desired_at": at_2300, "consent": False},
        {"kind": "reply", "campaign_id": None, "desired_at": at_2300, "consent": False},
    )
    receipt, reply = run(frame, rules)
    assert (receipt["decision"], receipt["send_at"], receipt["reason"]) == (
        "defer",
        morning,
        SkipReason.QUIET_HOURS,
    )
    assert (reply["decision"], reply["send_at"], reply["reason"]) == ("send", at_2300, None)


def test_a_transactional_message_may_go_after_the_marketing_window(rules: PolicyRules) -> None:
    at_2100 = datetime(2025, 11, 20, 21, 0, tzinfo=UTC) - SHANGHAI
    frame = candidates({"kind": "transactional", "campaign_id": None, "desired_at": at_2100})
    assert only(run(frame, rules)) == ("send", at_2100, None)


def test_a_message_whose_next_opening_is_after_expiry_is_skipped_not_sent_late(
    rules: PolicyRules,
) -> None:
    at_2100 = datetime(2025, 11, 20, 21, 0, tzinfo=UTC) - SHANGHAI
    frame = candidates(
        {"desired_at": at_2100, "expires_at": at_2100 + timedelta(hours=2), "campaign_id": 1},
        {"desired_at": at_2100, "expires_at": at_2100 + timedelta(hours=12), "campaign_id": 2},
    )
    expired, deferred = run(frame, rules)
    assert (expired["decision"], expired["send_at"], expired["reason"]) == (
        "skip",
        None,
        SkipReason.EXPIRED,
    )
    assert deferred["decision"] == "defer"
    assert deferred["send_at"] == datetime(2025, 11, 21, 8, 0, tzinfo=UTC) - SHANGHAI


def test_a_time_already_past_goes_now_and_an_expired_message_never(rules: PolicyRules) -> None:
    late = candidates(
        {"desired_at": NOW - timedelta(hours=3), "campaign_id": 1},
        {
            "desired_at": NOW - timedelta(hours=3),
            "expires_at": NOW - timedelta(hours=1),
            "campaign_id": 2,
        },
    )
    on_time, expired = run(late, rules)
    assert (on_time["decision"], on_time["send_at"]) == ("send", NOW)
    assert (expired["decision"], expired["reason"]) == ("skip", SkipReason.EXPIRED)


def test_no_marketing_on_a_public_holiday_when_the_rule_is_on(
    rules: PolicyRules, holiday_rules: PolicyRules
) -> None:
    national_day = datetime(2025, 10, 1, 10, 0, tzinfo=UTC) - SHANGHAI
    frame = candidates(
        {"desired_at": national_day, "expires_at": None},
        {"desired_at": national_day, "kind": "transactional", "campaign_id": None},
    )
    marketing, receipt = run(frame, holiday_rules, now=national_day)
    after_holiday = datetime(2025, 10, 9, 8, 0, tzinfo=UTC) - SHANGHAI
    assert (marketing["decision"], marketing["send_at"], marketing["reason"]) == (
        "defer",
        after_holiday,
        SkipReason.PUBLIC_HOLIDAY,
    )
    assert receipt["decision"] == "send"
    assert run(frame, rules, now=national_day)[0]["decision"] == "send"


# Frequency caps.


def marketing_days_ago(*days: float) -> pl.DataFrame:
    return history(*(("marketing", NOW - timedelta(days=day)) for day in days))


def test_the_fourth_marketing_message_in_30_days_goes_and_the_fifth_does_not(
    rules: PolicyRules,
) -> None:
    three = marketing_days_ago(2, 9, 16)
    assert only(run(candidates({}), rules, past=three))[0] == "send"
    four = marketing_days_ago(2, 9, 16, 23)
    # The oldest leaves the window in 7 days, after the message expires.
    assert only(run(candidates({}), rules, past=four)) == ("skip", None, SkipReason.FREQUENCY_CAP)


def test_a_capped_message_waits_for_the_window_to_free_a_slot_before_it_expires(
    rules: PolicyRules,
) -> None:
    # The oldest of four left the rolling 30 days one day from now, at 10:00 in Shanghai.
    four = marketing_days_ago(2, 9, 16, 29 - 2 / 24)
    decision, send_at, reason = only(run(candidates({}), rules, past=four))
    assert (decision, reason) == ("defer", SkipReason.FREQUENCY_CAP)
    assert send_at == NOW - timedelta(days=29 - 2 / 24) + timedelta(days=30)


def test_candidates_count_toward_the_cap_too(rules: PolicyRules) -> None:
    three = marketing_days_ago(2, 9, 16)
    frame = candidates({"campaign_id": 1}, {"campaign_id": 2})
    first, second = run(frame, rules, past=three)
    assert first["decision"] == "send"
    assert (second["decision"], second["reason"]) == ("skip", SkipReason.LOST_TO_PRIORITY)


def test_a_planned_message_counts_in_the_windows_after_it(rules: PolicyRules) -> None:
    # Three sent in the past and one planned in 5 days: a fifth now would crowd that window.
    past = marketing_days_ago(2, 9, 16, -5)
    assert only(run(candidates({}), rules, past=past))[0] == "skip"


def test_gold_members_get_two_a_week_and_not_a_third(rules: PolicyRules) -> None:
    gold = {"tier": "gold", "lifecycle_stage": "active"}
    assert only(run(candidates(gold), rules, past=marketing_days_ago(3)))[0] == "send"
    refused = only(run(candidates(gold), rules, past=marketing_days_ago(3, 4)))
    assert refused[0] == "skip"
    assert refused[2] == SkipReason.FREQUENCY_CAP
    # Gold's weekly rule replaces the monthly one: a fifth message in 30 days is fine.
    spread = marketing_days_ago(8, 15, 22, 28)
    assert only(run(candidates(gold), rules, past=spread))[0] == "send"


def test_active_members_get_one_campaign_a_week_plus_event_triggers(rules: PolicyRules) -> None:
    active = {"lifecycle_stage": "active", "tier": "silver"}
    last_week = marketing_days_ago(3)
    frame = candidates(
        {**active, "campaign_id": 1},
        {**active, "kind": "trigger", "campaign_id": None, "trigger_id": 7},
    )
    campaign, trigger = run(frame, rules, past=last_week)
    assert (campaign["decision"], campaign["reason"]) == ("skip", SkipReason.FREQUENCY_CAP)
    assert trigger["decision"] == "send"


def test_triggers_count_toward_an_ordinary_members_cap(rules: PolicyRules) -> None:
    past = history(*(("trigger", NOW - timedelta(days=day)) for day in (2, 9, 16, 23)))
    assert only(run(candidates({}), rules, past=past))[0] == "skip"


@pytest.mark.parametrize(
    ("caps", "trigger_goes", "marketing_after_a_trigger_goes"),
    [("default=1/7d+triggers", True, True), ("default=1/7d", False, False)],
)
def test_a_plus_triggers_rule_caps_campaigns_only_and_lets_triggers_through(
    caps: str, trigger_goes: bool, marketing_after_a_trigger_goes: bool
) -> None:
    rules = default_rules(caps=parse_caps(caps))
    frame = candidates({}, {"kind": "trigger", "campaign_id": None, "trigger_id": 7})
    marketing, trigger = run(frame, rules, past=marketing_days_ago(2))
    assert (marketing["decision"], marketing["reason"]) == ("skip", SkipReason.FREQUENCY_CAP)
    assert (trigger["decision"] == "send") is trigger_goes
    after_trigger = history(("trigger", NOW - timedelta(days=2)))
    decision = only(run(candidates({}), rules, past=after_trigger))[0]
    assert (decision == "send") is marketing_after_a_trigger_goes


def test_transactional_messages_and_replies_never_count_nor_are_capped(
    rules: PolicyRules,
) -> None:
    busy = marketing_days_ago(1, 2, 3, 4)
    receipts = history(*(("transactional", NOW - timedelta(days=day)) for day in (1, 2, 3, 4)))
    frame = candidates({"kind": "transactional", "campaign_id": None})
    assert only(run(frame, rules, past=busy))[0] == "send"
    assert only(run(candidates({}), rules, past=receipts))[0] == "send"


def test_priority_decides_the_last_slot_and_the_loser_waits_if_it_can(
    rules: PolicyRules,
) -> None:
    frame = candidates(
        {"campaign_id": 1},
        {"kind": "trigger", "campaign_id": None, "trigger_id": 3},
    )
    three = marketing_days_ago(2, 9, 16)
    campaign, trigger = run(frame, rules, past=three)
    assert trigger["decision"] == "send"
    assert (campaign["decision"], campaign["reason"]) == ("skip", SkipReason.LOST_TO_PRIORITY)
    # When the oldest leaves the window before expiry, the loser is deferred instead.
    three_old = marketing_days_ago(2, 9, 29.75)
    campaign, trigger = run(frame, rules, past=three_old)
    assert trigger["decision"] == "send"
    assert (campaign["decision"], campaign["reason"]) == ("defer", SkipReason.LOST_TO_PRIORITY)
    assert campaign["send_at"] == NOW + timedelta(days=0.25)  # 14:00 in Shanghai


def test_a_freed_slot_outside_the_send_window_waits_for_the_next_opening(
    rules: PolicyRules,
) -> None:
    # The oldest of four leaves at 20:00 in Shanghai; the message goes at 08:00 the next day.
    four = marketing_days_ago(2, 9, 16, 29.5)
    decision, send_at, reason = only(run(candidates({}), rules, past=four))
    assert (decision, reason) == ("defer", SkipReason.FREQUENCY_CAP)
    assert send_at == datetime(2025, 11, 21, 8, 0, tzinfo=UTC) - SHANGHAI


# Offer cool-down.


def test_the_same_offer_type_waits_30_days(rules: PolicyRules) -> None:
    desired = NOW + timedelta(hours=2)
    thirty = history(("marketing", desired - timedelta(days=30), "coupon"))
    coupon = candidates({"offer_type": "coupon", "desired_at": desired})
    assert only(run(coupon, rules, past=thirty)) == ("send", desired, None)
    twenty_nine = history(("marketing", desired - timedelta(days=29), "coupon"))
    assert only(run(coupon, rules, past=twenty_nine)) == (
        "defer",
        desired + timedelta(days=1),
        SkipReason.OFFER_COOLDOWN,
    )
    soon_gone = coupon.with_columns(expires_at=pl.col("desired_at") + timedelta(hours=6))
    assert only(run(soon_gone, rules, past=twenty_nine)) == (
        "skip",
        None,
        SkipReason.OFFER_COOLDOWN,
    )
    points = candidates({"offer_type": "points", "desired_at": desired})
    assert only(run(points, rules, past=twenty_nine))[0] == "send"


def test_two_candidates_of_one_offer_type_send_one(rules: PolicyRules) -> None:
    frame = candidates(
        {"offer_type": "coupon", "campaign_id": 1},
        {"offer_type": "coupon", "campaign_id": 2, "kind": "trigger"},
    )
    campaign, trigger = run(frame, rules)
    assert trigger["decision"] == "send"
    assert (campaign["decision"], campaign["reason"]) == ("skip", SkipReason.OFFER_COOLDOWN)


# One message per member per campaign.


def test_overlapping_segments_give_one_message_per_campaign(rules: PolicyRules) -> None:
    frame = candidates({"campaign_id": 5}, {"campaign_id": 5}, {"campaign_id": 6})
    first, repeat, other = run(frame, rules)
    assert first["decision"] == "send" and other["decision"] == "send"
    assert (repeat["decision"], repeat["reason"]) == ("skip", SkipReason.DUPLICATE_IN_CAMPAIGN)


def test_a_campaign_already_sent_is_not_sent_again(rules: PolicyRules) -> None:
    past = history(("marketing", NOW - timedelta(days=1))).with_columns(campaign_id=pl.lit(5))
    outcome = only(run(candidates({"campaign_id": 5}), rules, past=past))
    assert outcome == ("skip", None, SkipReason.DUPLICATE_IN_CAMPAIGN)


# Consent and suppression.


@pytest.mark.parametrize(
    ("reason", "marketing", "transactional", "reply"),
    [
        ("opted_out", SkipReason.OPTED_OUT, None, None),
        ("complained", SkipReason.COMPLAINED, SkipReason.COMPLAINED, SkipReason.COMPLAINED),
        ("invalid", SkipReason.INVALID_PHONE, SkipReason.INVALID_PHONE, SkipReason.INVALID_PHONE),
        ("erased", SkipReason.ERASED, SkipReason.ERASED, SkipReason.ERASED),
    ],
)
def test_every_suppression_reason(
    rules: PolicyRules,
    reason: str,
    marketing: SkipReason,
    transactional: SkipReason | None,
    reply: SkipReason | None,
) -> None:
    suppressed = pl.DataFrame({"phone_hash": ["p1"], "reason": [reason]})
    frame = candidates(
        {},
        {"kind": "trigger", "campaign_id": None},
        {"kind": "transactional", "campaign_id": None},
        {"kind": "reply", "campaign_id": None},
    )
    rows = run(frame, rules, suppressions=suppressed)
    assert [row["reason"] for row in rows] == [marketing, marketing, transactional, reply]
    assert [row["decision"] for row in rows[2:]] == [
        "skip" if transactional else "send",
        "skip" if reply else "send",
    ]


def test_marketing_needs_consent_and_transactional_does_not(rules: PolicyRules) -> None:
    frame = candidates(
        {"consent": False},
        {"consent": None, "campaign_id": 2},
        {"consent": False, "kind": "trigger", "campaign_id": None},
        {"consent": False, "kind": "transactional", "campaign_id": None},
    )
    rows = run(frame, rules)
    assert [row["reason"] for row in rows[:3]] == [SkipReason.NO_CONSENT] * 3
    assert rows[3]["decision"] == "send"


def test_optional_columns_may_be_left_out(rules: PolicyRules) -> None:
    frame = pl.DataFrame(
        {
            "member_id": [1, 2],
            "phone_hash": ["p1", "p2"],
            "kind": ["transactional", "marketing"],
            "desired_at": [NOW + timedelta(hours=1)] * 2,
        }
    )
    decided = decide(
        frame, history=pl.DataFrame(), suppressions=pl.DataFrame(), rules=rules, now=NOW
    )
    assert decided["decision"].to_list() == ["send", "skip"]
    assert decided["reason"].to_list() == [None, SkipReason.NO_CONSENT]
    assert decided["priority"].to_list() == [300, 100]
    assert decided["timezone"].to_list() == ["Asia/Shanghai"] * 2


def test_rows_come_back_in_the_order_given(rules: PolicyRules) -> None:
    frame = candidates(
        *({"member_id": member, "phone_hash": f"p{member}"} for member in (5, 3, 9, 1, 3))
    )
    decided = decide(frame, history=NO_HISTORY, suppressions=NO_SUPPRESSIONS, rules=rules, now=NOW)
    assert decided["member_id"].to_list() == [5, 3, 9, 1, 3]


# Errors a caller can make.


def test_unusable_candidates_raise_errors_that_say_what_to_fix(rules: PolicyRules) -> None:
    with pytest.raises(PolicyError, match="'kind' holds 'promo'"):
        run(candidates({"kind": "promo"}), rules)
    with pytest.raises(PolicyError, match="'Mars/Olympus' is not an IANA timezone"):
        run(candidates({"timezone": "Mars/Olympus"}), rules)
    naive = candidates({}).with_columns(pl.col("desired_at").dt.replace_time_zone(None))
    with pytest.raises(PolicyError, match="without a timezone; give them in UTC"):
        run(naive, rules)
    with pytest.raises(PolicyError, match="lack column"):
        run(candidates({}).drop("phone_hash"), rules)
