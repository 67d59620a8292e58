"""Receipt: a transactional message 30 minutes after a POS order, with the points it earned
and the balance; quiet hours defer it, consent is not needed, an order sent twice gives one."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from .conftest import add_member, add_store, at, local, order_line, trigger_messages


def test_a_receipt_goes_half_an_hour_after_the_order_with_points(
    engine: Engine, client: TestClient
) -> None:
    add_store(engine, name="徐汇店")
    add_member(engine, 1, consent=False)
    moment = local(2026, 6, 10, 10)
    with at(moment):
        answer = client.post(
            "/api/v1/orders:batch", json={"orders": [order_line(1, "SO-1", moment, "88.50")]}
        )
    assert answer.status_code == 200, answer.text
    sent = trigger_messages(engine, "receipt")
    assert sent["state"].to_list() == ["queued"]
    assert sent["kind"].to_list() == ["transactional"]
    assert sent["send_at"][0].astimezone(moment.tzinfo) == moment + timedelta(minutes=30)
    text = sent["text"][0]
    assert "6月10日在徐汇店消费88.50元" in text
    assert "本次获得88积分，当前积分88" in text  # one point per yuan paid, by default
    assert "拒收" not in text  # no opt-out text on a receipt


def test_an_order_sent_twice_gives_one_receipt(engine: Engine, client: TestClient) -> None:
    add_store(engine)
    add_member(engine, 1)
    moment = local(2026, 6, 10, 10)
    with at(moment):
        for _ in range(2):
            client.post("/api/v1/orders:batch", json={"orders": [order_line(1, "SO-1", moment)]})
    assert trigger_messages(engine, "receipt").height == 1


def test_a_late_evening_order_waits_for_the_quiet_hours_to_end(
    engine: Engine, client: TestClient
) -> None:
    add_store(engine)
    add_member(engine, 1)
    moment = local(2026, 6, 10, 21, 50)
    with at(moment):
        client.post("/api/v1/orders:batch", json={"orders": [order_line(1, "SO-1", moment)]})
    sent = trigger_messages(engine, "receipt")
    assert sent["send_at"][0].astimezone(moment.tzinfo) == local(2026, 6, 11, 8)


def test_history_imported_later_gets_no_receipt(engine: Engine, client: TestClient) -> None:
    add_store(engine)
    add_member(engine, 1)
    with at(local(2026, 6, 10, 10)):
        client.post(
            "/api/v1/orders:batch",
            json={"orders": [order_line(1, "SO-OLD", local(2026, 6, 8, 10))]},
        )
    assert trigger_messages(engine, "receipt").height == 0


def test_a_disabled_receipt_sends_nothing(engine: Engine, client: TestClient) -> None:
    add_store(engine)
    add_member(engine, 1)
    assert client.patch("/api/v1/triggers/receipt", json={"enabled": False}).status_code == 200
    moment = local(2026, 6, 10, 10)
    with at(moment):
        client.post("/api/v1/orders:batch", json={"orders": [order_line(1, "SO-1", moment)]})
    assert trigger_messages(engine, "receipt").height == 0
