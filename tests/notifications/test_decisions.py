"""The intake remembers the policy's decisions on transactional messages for a minute: what it
remembers must be what the policy answers at any moment of that minute, at the edges of
quiet hours, in timezones with odd offsets and on days the clocks change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tidings.config import Settings
from tidings.notifications.decisions import DecisionMemo, Situation, decide_now
from tidings.policy.rules import PolicyRules

SETTINGS = Settings(quiet_hours="22:00-08:00")
RULES = PolicyRules.from_settings(SETTINGS)
SITUATIONS = [
    Situation(kind, timezone, suppressed)
    for kind in ("transactional", "reply")
    for timezone in ("Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe")
    for suppressed in ((), ("complained",), ("opted_out",), ("erased", "invalid"))
]
EDGES = [
    datetime(2026, 12, 2, 13, 59, tzinfo=UTC),  # 21:59 in Shanghai: still open
    datetime(2026, 12, 2, 14, 0, tzinfo=UTC),  # 22:00 in Shanghai: quiet hours begin
    datetime(2026, 12, 2, 23, 59, tzinfo=UTC),  # 07:59 in Shanghai
    datetime(2026, 12, 3, 0, 0, tzinfo=UTC),  # 08:00 in Shanghai: open again
    datetime(2026, 3, 8, 6, 59, tzinfo=UTC),  # 01:59 in New York, before the clocks go forward
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # 03:00 in New York, after
    datetime(2026, 12, 2, 2, 15, tzinfo=UTC),  # 08:00 in Kathmandu (+05:45)
]


def _remembered_then_asked(minute: datetime, first: timedelta, later: timedelta) -> None:
    memo = DecisionMemo()
    memo.decide(SITUATIONS, settings=SETTINGS, now=minute + first)
    remembered = memo.decide(SITUATIONS, settings=SETTINGS, now=minute + later)
    assert remembered == decide_now(SITUATIONS, rules=RULES, now=minute + later)


@pytest.mark.parametrize("minute", EDGES, ids=[edge.isoformat() for edge in EDGES])
def test_a_decision_holds_for_the_whole_minute_at_the_edges(minute: datetime) -> None:
    _remembered_then_asked(minute, timedelta(0), timedelta(seconds=59, microseconds=999_999))
    _remembered_then_asked(minute, timedelta(seconds=59, microseconds=999_999), timedelta(0))


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    minute=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ).map(lambda at: at.replace(second=0, microsecond=0)),
    first=st.integers(0, 59_999_999),
    later=st.integers(0, 59_999_999),
)
def test_a_decision_holds_for_the_whole_minute_at_any_time(
    minute: datetime, first: int, later: int
) -> None:
    _remembered_then_asked(minute, timedelta(microseconds=first), timedelta(microseconds=later))


def test_the_memo_decides_again_in_the_next_minute_and_under_other_settings() -> None:
    memo = DecisionMemo()
    shanghai = [Situation("transactional", "Asia/Shanghai", ())]
    before = datetime(2026, 12, 2, 13, 59, 59, tzinfo=UTC)
    assert memo.decide(shanghai, settings=SETTINGS, now=before)[0].decision == "send"
    quiet = memo.decide(shanghai, settings=SETTINGS, now=before + timedelta(seconds=1))[0]
    assert (quiet.decision, quiet.reason) == ("defer", "quiet_hours")
    awake = SETTINGS.model_copy(update={"quiet_hours": "23:00-07:00"})
    assert memo.decide(shanghai, settings=awake, now=before + timedelta(seconds=2))[0].decision == (
        "send"
    )
