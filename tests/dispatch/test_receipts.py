"""Receipts settle messages idempotently and in any order, and none is ever lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from tidings import clock
from tidings.db import session_scope
from tidings.dispatch.models import TRANSITIONS, MessageState, sources
from tidings.dispatch.receipts import ReceiptError, apply_receipts, rematch_recent
from tidings.providers.base import Receipt

from .conftest import add_campaign, add_messages


def _submit(engine: Engine, ids: list[int]) -> None:
    with engine.begin() as connection:
        for message_id in ids:
            connection.execute(
                text(
                    "UPDATE messages SET state = 'submitted', provider_message_id = :pmid"
                    " WHERE id = :id"
                ),
                {"pmid": f"sim-{message_id}", "id": message_id},
            )


def _message(engine: Engine, message_id: int) -> tuple[str, str | None]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT state, error_code FROM messages WHERE id = :id"), {"id": message_id}
        ).one()
    return row[0], row[1]


def _apply(engine: Engine, *receipts: Receipt) -> None:
    with session_scope(engine) as session:
        apply_receipts(db_session=session, receipts=list(receipts), now=clock.now())


def _receipt(message_id: int, status: str, minutes: int = 0, code: str | None = None) -> Receipt:
    at = clock.now() + timedelta(minutes=minutes)
    return Receipt("simulator", f"sim-{message_id}", status, at, code)


def test_no_state_leads_back_to_planned_and_final_states_lead_nowhere() -> None:
    assert sources(MessageState.PLANNED) == []
    for final in (MessageState.DELIVERED, MessageState.FAILED, MessageState.EXPIRED):
        assert TRANSITIONS[final] == frozenset()
    assert "unknown" not in sources(MessageState.QUEUED)
    assert "unknown" not in sources(MessageState.SUBMITTING)


def test_a_failed_receipt_after_delivered_changes_nothing(engine: Engine) -> None:
    campaign = add_campaign(engine)
    [message_id] = add_messages(engine, 1, campaign_id=campaign)
    _submit(engine, [message_id])
    _apply(engine, _receipt(message_id, "delivered"))
    _apply(engine, _receipt(message_id, "failed", minutes=5, code="UNDELIV"))
    assert _message(engine, message_id) == ("delivered", None)


def test_delivered_twice_is_harmless_and_both_receipts_are_kept(engine: Engine) -> None:
    campaign = add_campaign(engine)
    [message_id] = add_messages(engine, 1, campaign_id=campaign)
    _submit(engine, [message_id])
    _apply(engine, _receipt(message_id, "delivered"), _receipt(message_id, "delivered"))
    _apply(engine, _receipt(message_id, "delivered"))
    assert _message(engine, message_id)[0] == "delivered"
    with engine.connect() as connection:
        kept = connection.execute(
            text("SELECT COUNT(*) FROM delivery_receipts WHERE message_id = :id"),
            {"id": message_id},
        ).scalar_one()
    assert kept == 3


def test_the_earliest_of_conflicting_receipts_in_one_batch_wins(engine: Engine) -> None:
    campaign = add_campaign(engine)
    [message_id] = add_messages(engine, 1, campaign_id=campaign)
    _submit(engine, [message_id])
    _apply(
        engine,
        _receipt(message_id, "delivered", minutes=9),
        _receipt(message_id, "failed", minutes=1, code="UNDELIV"),
    )
    assert _message(engine, message_id) == ("failed", "UNDELIV")


def test_a_receipt_never_moves_a_queued_message(engine: Engine) -> None:
    campaign = add_campaign(engine)
    [message_id] = add_messages(engine, 1, campaign_id=campaign)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE messages SET provider_message_id = :p WHERE id = :id"),
            {"p": f"sim-{message_id}", "id": message_id},
        )
    _apply(engine, _receipt(message_id, "delivered"))
    assert _message(engine, message_id)[0] == "queued"


def test_a_receipt_for_an_unknown_id_is_kept_and_the_rest_of_the_batch_applies(
    engine: Engine,
) -> None:
    campaign = add_campaign(engine)
    [message_id] = add_messages(engine, 1, campaign_id=campaign)
    _submit(engine, [message_id])
    stranger = Receipt("simulator", "sim-no-such-message", "delivered", clock.now())
    _apply(engine, stranger, _receipt(message_id, "delivered"))
    assert _message(engine, message_id)[0] == "delivered"
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT provider_message_id, message_id FROM delivery_receipts ORDER BY id")
        ).all()
    assert ("sim-no-such-message", None) in rows


def test_a_late_receipt_settles_a_message_left_unknown(engine: Engine) -> None:
    campaign = add_campaign(engine)
    [message_id] = add_messages(engine, 1, campaign_id=campaign)
    _submit(engine, [message_id])
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE messages SET state = 'unknown' WHERE id = :id"), {"id": message_id}
        )
    _apply(engine, _receipt(message_id, "delivered"))
    assert _message(engine, message_id)[0] == "delivered"


def test_a_receipt_that_raced_the_providers_answer_is_matched_on_the_next_pass(
    engine: Engine,
) -> None:
    campaign = add_campaign(engine)
    [message_id] = add_messages(engine, 1, campaign_id=campaign)
    _apply(engine, _receipt(message_id, "delivered"))  # before the answer was recorded
    _submit(engine, [message_id])  # the answer lands without looking for early receipts
    assert _message(engine, message_id)[0] == "submitted"
    since = clock.now() - timedelta(hours=1)
    with session_scope(engine) as session:
        assert rematch_recent(db_session=session, since=since, now=clock.now()) == 1
    assert _message(engine, message_id)[0] == "delivered"
    with session_scope(engine) as session:
        assert rematch_recent(db_session=session, since=since, now=clock.now()) == 0


def test_a_batch_with_a_status_nobody_knows_is_refused_whole(engine: Engine) -> None:
    campaign = add_campaign(engine)
    first, second = add_messages(engine, 2, campaign_id=campaign)
    _submit(engine, [first, second])
    with pytest.raises(ReceiptError, match=rf"'sim-{second}' has status 'DELIVRD'; expected one"):
        _apply(engine, _receipt(first, "delivered"), _receipt(second, "DELIVRD"))
    assert [_message(engine, m)[0] for m in (first, second)] == ["submitted", "submitted"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM delivery_receipts")).scalar() == 0
