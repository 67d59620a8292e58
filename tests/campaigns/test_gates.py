"""Health gates judge a stage by what it shows with confidence, and are read from text."""

from __future__ import annotations

import pytest

from tidings.campaigns.rollout import GateError, Gates, StageHealth, failures, ready


def health(delivered: int, undelivered: int, *, opted_out: int = 0, complained: int = 0,
           pending: int = 0) -> StageHealth:  # fmt: skip
    sent = delivered + undelivered + pending
    return StageHealth(sent, delivered, undelivered, pending, opted_out, complained)


def test_a_large_stage_fails_each_gate_it_misses_and_says_by_how_much() -> None:
    gates = Gates()
    assert failures(health(9_900, 100), gates) == []
    assert failures(health(9_500, 500), gates) == [
        "delivery 95.0% is below the 98.0% gate (9500 of 10000 receipts)"
    ]
    found = failures(health(10_000, 0, opted_out=80, complained=40), gates)
    assert found == [
        "opt-outs 0.80% are above the 0.30% gate (80 of 10000 delivered)",
        "complaints 0.40% are above the 0.10% gate (40 of 10000 delivered)",
    ]


def test_a_small_stage_is_not_stopped_by_one_unlucky_message() -> None:
    assert failures(health(12, 1), Gates()) == []  # 92%, but thirteen messages show little
    assert failures(health(3, 7), Gates()) != []  # 30% of ten is clearly bad
    # A first stage of one member: its one failure is judged again with the next stage.
    assert failures(health(0, 1), Gates()) == []
    assert failures(health(0, 2), Gates()) == [
        "delivery 0.0% is below the 98.0% gate (0 of 2 receipts)"
    ]


def test_a_stage_is_judged_once_settled_or_enough_receipts_are_in() -> None:
    gates = Gates(min_receipts=100, wait_seconds=600)
    assert not ready(health(50, 0, pending=500), gates, waited=10)
    assert ready(health(100, 0, pending=500), gates, waited=10)
    assert ready(health(20, 0), gates, waited=10)
    assert ready(health(5, 0, pending=500), gates, waited=600)
    assert ready(health(0, 0), gates, waited=0)  # an empty stage: nothing to wait for


def test_gates_are_read_from_text() -> None:
    gates = Gates.parse("delivery=0.95, opt_out=0.01, min_receipts=50, wait=120")
    assert gates == Gates(delivery_min=0.95, opt_out_max=0.01, min_receipts=50, wait_seconds=120)
    with pytest.raises(GateError, match="unknown gate 'deliverd'"):
        Gates.parse("deliverd=0.9")
    with pytest.raises(GateError, match="'high' is not a number"):
        Gates.parse("delivery=high")
