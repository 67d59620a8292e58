"""At send time the dispatcher checks a trigger message's exit condition again: a member who
ordered after the cart, or whom the exit condition now matches, gets no message; it is
cancelled with the reason, and everyone else's goes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch import claims
from tidings.dispatch.worker import Worker

from .conftest import add_member, add_order, add_profile, at, cart, local, trigger_messages

CART_AT = local(2026, 6, 10, 10)


def _dispatch(engine: Engine, tmp_path: Path) -> list[int]:
    """Claims what is due 90 minutes after the cart as the dispatcher does and keeps what may
    still go (the rest is cancelled); returns the ids it would send."""
    settings = Settings(simulator_inbox=tmp_path / "inbox.jsonl", send_window="00:00-00:00")
    now = CART_AT + timedelta(minutes=90)
    worker = Worker(engine, settings=settings, owner="w1")
    with at(now):
        with session_scope(engine) as session:
            claimed = claims.take_due(db_session=session, owner="w1", limit=100, lease=30, now=now)
        return [m.id for m in worker._without_exited(claimed, now)]


def _firing_outcomes(engine: Engine) -> list[tuple[int, str, str | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            text("SELECT member_id, outcome, skip_reason FROM trigger_firings ORDER BY id")
        )
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def test_a_member_who_ordered_since_the_cart_gets_no_reminder(
    engine: Engine, client: TestClient, tmp_path: Path
) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    with at(CART_AT):
        client.post("/api/v1/events:batch", json={"events": [cart(1, CART_AT), cart(2, CART_AT)]})
    # An order written straight to the store (not through the order API, which cancels too).
    add_order(engine, 1, CART_AT + timedelta(minutes=40))
    _dispatch(engine, tmp_path)
    sent = trigger_messages(engine, "cart_abandoned")
    # The 1 h reminders are due: member 1's is cancelled, member 2's goes; the 24 h ones wait.
    assert sorted(sent.select("member_id", "state", "skip_reason").rows()) == [
        (1, "cancelled", "ordered"),
        (1, "queued", None),
        (2, "queued", None),
        (2, "submitting", None),
    ]
    assert (1, "cancelled", "ordered") in _firing_outcomes(engine)


def test_a_message_whose_exit_condition_now_holds_is_cancelled(
    engine: Engine, client: TestClient, tmp_path: Path
) -> None:
    for member_id in (1, 2):
        add_member(engine, member_id)
        add_profile(engine, member_id, tier="silver")
    body = {
        "name": "浏览未购",
        "event_type": "page_view",
        "template": "{surname|亲爱的会员}，您看中的{event_item|商品}还在等您",
        "exit_condition": 'tier == "gold"',
        "delay_minutes": 60,
    }
    assert client.post("/api/v1/triggers", json=body).status_code == 201
    views = [
        {"member_id": m, "kind": "page_view", "occurred_at": CART_AT.isoformat()} for m in (1, 2)
    ]
    with at(CART_AT):
        answer = client.post("/api/v1/events:batch", json={"events": views})
    assert answer.json()["fired"]["浏览未购"]["queued"] == 2
    with session_scope(engine) as session:  # member 1 reaches gold before the message goes
        session.execute(text("UPDATE profiles SET tier = 'gold' WHERE member_id = 1"))
    _dispatch(engine, tmp_path)
    sent = trigger_messages(engine, "浏览未购")
    assert sent.select("member_id", "state", "skip_reason").rows() == [
        (1, "cancelled", "exit_condition"),
        (2, "submitting", None),
    ]
