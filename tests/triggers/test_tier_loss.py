"""The gentle note before a tier lapses: days ahead of the day its qualifying orders leave the
tier window (90 days by default), once per member per window, across its boundaries."""

from __future__ import annotations

from sqlalchemy import Engine

from .conftest import (
    add_member,
    add_order,
    add_profile,
    add_sent_messages,
    local,
    run_date_trigger,
    trigger_messages,
)


def _gold_until_june_29(engine: Engine, member_id: int, **member: object) -> None:
    """Gold (5,000 yuan in 90 days) only while an order of 1 April stays in the window."""
    add_member(engine, member_id, **member)  # type: ignore[arg-type]
    add_profile(engine, member_id, tier="gold")
    add_order(engine, member_id, local(2026, 4, 1), amount_cents=300_000)
    add_order(engine, member_id, local(2026, 5, 20), amount_cents=250_000)


def test_the_note_goes_a_week_before_the_tier_lapses_naming_what_keeps_it(engine: Engine) -> None:
    _gold_until_june_29(engine, 1)
    assert run_date_trigger(engine, "tier_loss", local(2026, 6, 22))["fired"] == 0
    assert run_date_trigger(engine, "tier_loss", local(2026, 6, 23))["queued"] == 1
    assert run_date_trigger(engine, "tier_loss", local(2026, 6, 24))["fired"] == 0
    sent = trigger_messages(engine, "tier_loss")
    assert sent["member_id"].to_list() == [1]
    assert "您的金卡会员权益将保留至6月29日，此前再消费2,500元即可继续享有" in sent["text"][0]


def test_no_note_after_the_lapse_or_while_recent_spend_keeps_the_tier(engine: Engine) -> None:
    _gold_until_june_29(engine, 1)
    add_member(engine, 2)
    add_profile(engine, 2, tier="silver")
    add_order(engine, 2, local(2026, 6, 20), amount_cents=200_000)
    add_member(engine, 3)
    add_profile(engine, 3, tier="bronze")
    add_order(engine, 3, local(2026, 4, 1), amount_cents=50_000)
    assert run_date_trigger(engine, "tier_loss", local(2026, 6, 30))["fired"] == 0
    assert trigger_messages(engine, "tier_loss").height == 0


def test_a_later_order_moving_the_lapse_brings_no_second_note_that_window(engine: Engine) -> None:
    _gold_until_june_29(engine, 1)
    assert run_date_trigger(engine, "tier_loss", local(2026, 6, 25))["queued"] == 1
    # Buying again keeps gold until 17 August: within the same 90 days, no second note.
    add_order(engine, 1, local(2026, 6, 26), amount_cents=250_000)
    assert run_date_trigger(engine, "tier_loss", local(2026, 8, 11))["fired"] == 0
    assert trigger_messages(engine, "tier_loss").height == 1


def test_opted_out_and_capped_members_are_skipped_with_the_reason(engine: Engine) -> None:
    _gold_until_june_29(engine, 1, opted_out=True)
    _gold_until_june_29(engine, 2)
    add_sent_messages(engine, 2, 4, sent_at=local(2026, 6, 20))  # the cap: 4 in 30 days
    report = run_date_trigger(engine, "tier_loss", local(2026, 6, 23))
    assert (report["queued"], report["skipped"]) == (0, {"frequency_cap": 1, "opted_out": 1})
    assert run_date_trigger(engine, "tier_loss", local(2026, 6, 24))["fired"] == 0
