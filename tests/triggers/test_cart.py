"""Cart abandoned: reminders 1 h and 24 h after a cart event, none after 48 h, and none once
the member orders; an event delivered twice reminds once."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from .conftest import add_member, add_store, at, cart, local, order_line, trigger_messages


def test_two_reminders_due_an_hour_and_a_day_after_the_cart(
    engine: Engine, client: TestClient
) -> None:
    add_member(engine, 1)
    moment = local(2026, 6, 10, 10)
    with at(moment):
        answer = client.post("/api/v1/events:batch", json={"events": [cart(1, moment)]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["fired"]["cart_abandoned"]["queued"] == 2
    sent = trigger_messages(engine, "cart_abandoned")
    assert sent["state"].to_list() == ["queued", "queued"]
    assert sorted(at_.astimezone(moment.tzinfo) for at_ in sent["send_at"]) == [
        moment + timedelta(hours=1),
        moment + timedelta(hours=24),
    ]
    assert "有机牛奶 1L" in sent["text"][0]
    assert {e.astimezone(moment.tzinfo) for e in sent["expires_at"]} == {
        moment + timedelta(hours=48)
    }


def test_an_event_delivered_twice_reminds_once(engine: Engine, client: TestClient) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    moment = local(2026, 6, 10, 10)
    events = [cart(1, moment, id="c-1"), cart(2, moment)]
    with at(moment):
        first = client.post("/api/v1/events:batch", json={"events": events}).json()
        again = client.post("/api/v1/events:batch", json={"events": events}).json()
    assert (first["stored"], first["duplicates"]) == (2, 0)
    assert again["stored"] == 1  # the event without an id is kept again ...
    assert again["duplicates"] == 1
    assert again["fired"]["cart_abandoned"]["fired"] == 0  # ... but reminds no more
    assert trigger_messages(engine, "cart_abandoned").height == 4


def test_an_order_after_the_cart_cancels_the_reminders(engine: Engine, client: TestClient) -> None:
    add_store(engine)
    add_member(engine, 1)
    add_member(engine, 2)
    moment = local(2026, 6, 10, 10)
    with at(moment):
        client.post("/api/v1/events:batch", json={"events": [cart(1, moment), cart(2, moment)]})
    later = moment + timedelta(minutes=30)
    with at(later):
        answer = client.post(
            "/api/v1/orders:batch", json={"orders": [order_line(1, "SO-1", later)]}
        )
    assert answer.status_code == 200, answer.text
    sent = trigger_messages(engine, "cart_abandoned")
    assert sent.filter(sent["member_id"] == 1)["state"].to_list() == ["cancelled", "cancelled"]
    assert sent.filter(sent["member_id"] == 2)["state"].to_list() == ["queued", "queued"]


def test_a_cart_after_an_order_reminds_but_an_order_after_it_does_not(
    engine: Engine, client: TestClient
) -> None:
    add_store(engine)
    add_member(engine, 1)
    moment = local(2026, 6, 10, 10)
    with at(moment):
        client.post("/api/v1/orders:batch", json={"orders": [order_line(1, "SO-1", moment)]})
        client.post(
            "/api/v1/events:batch",
            json={"events": [cart(1, moment - timedelta(minutes=5), id="before")]},
        )
    assert trigger_messages(engine, "cart_abandoned").height == 0
    with at(moment + timedelta(minutes=10)):
        client.post(
            "/api/v1/events:batch",
            json={"events": [cart(1, moment + timedelta(minutes=10), id="after")]},
        )
    assert trigger_messages(engine, "cart_abandoned").height == 2


def test_a_cart_reported_after_48_hours_sends_nothing(engine: Engine, client: TestClient) -> None:
    add_member(engine, 1)
    moment = local(2026, 6, 10, 10)
    with at(moment + timedelta(hours=49)):
        client.post("/api/v1/events:batch", json={"events": [cart(1, moment)]})
    sent = trigger_messages(engine, "cart_abandoned")
    assert sent["state"].to_list() == ["skipped", "skipped"]
    assert set(sent["skip_reason"].to_list()) == {"expired"}


def test_opted_out_members_get_no_reminder_and_bad_events_change_nothing(
    engine: Engine, client: TestClient
) -> None:
    add_member(engine, 1, opted_out=True)
    moment = local(2026, 6, 10, 10)
    with at(moment):
        answer = client.post(
            "/api/v1/events:batch", json={"events": [cart(1, moment), cart(99, moment)]}
        )
        assert answer.json()["errors"] == [
            {"index": 1, "reason": "no member matches its member_id, member_code or phone"}
        ]
        naive = client.post(
            "/api/v1/events:batch",
            json={"events": [cart(1, moment) | {"occurred_at": "2026-06-10T10:00:00"}]},
        )
    assert naive.status_code == 422
    assert naive.headers["content-type"] == "application/problem+json"
    sent = trigger_messages(engine, "cart_abandoned")
    assert sent["skip_reason"].to_list() == ["opted_out", "opted_out"]
