"""Transactional messages end to end: sent at once through the simulator, once per
idempotency key, in the ledger and its history, with suppression and quiet hours kept."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.campaigns.sources import phone_hash
from tidings.config import Settings
from tidings.db import session_scope
from tidings.http import API_KEY_TRUSTED_FOR
from tidings.members.models import Suppression, SuppressionReason

from .conftest import NIGHT, NOW, PHONE, run_worker

ORDER = {
    "idempotency_key": "order-8801-confirmed",
    "template": "{surname}，您的订单{order}已确认，预计{day}送达。",
    "values": {"order": "8801", "day": "周五"},
}


def _inbox(settings: Settings) -> list[dict[str, object]]:
    path = settings.simulator_inbox
    assert path is not None
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_notice_goes_once_per_key_and_shows_its_history(
    engine: Engine, client: TestClient, settings: Settings, member: int
) -> None:
    with clock.frozen(NOW):
        first = client.post("/api/v1/messages", json={**ORDER, "member_id": member})
        again = client.post("/api/v1/messages", json={**ORDER, "member_id": member})
    assert first.status_code == 201, first.text
    assert first.json()["state"] == "queued", first.json()["skip_reason"]
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["replayed"] is True

    run_worker(engine, settings)
    received = _inbox(settings)
    assert [line["message_id"] for line in received] == [first.json()["id"]]
    assert received[0]["text"] == "【好邻居】陈女士，您的订单8801已确认，预计周五送达。"

    shown = client.get(f"/api/v1/messages/{first.json()['id']}").json()
    assert shown["state"] == "delivered"
    assert [step["state"] for step in shown["history"]] == ["accepted", "submitted", "delivered"]
    assert shown["idempotency_key"] == ORDER["idempotency_key"]


def test_a_complaint_stops_a_notice_and_a_bad_request_changes_nothing(
    engine: Engine, client: TestClient, member: int
) -> None:
    with session_scope(engine) as session:
        session.add(
            Suppression(
                phone_hash=phone_hash(PHONE), reason=SuppressionReason.COMPLAINED, source="test"
            )
        )
    stopped = client.post("/api/v1/messages", json={**ORDER, "phone": "138 0000 0001"})
    assert stopped.status_code == 201
    assert (stopped.json()["state"], stopped.json()["skip_reason"]) == ("skipped", "complained")

    missing = client.post(
        "/api/v1/messages",
        json={**ORDER, "idempotency_key": "k2", "member_id": member, "values": {"order": "1"}},
    )
    assert missing.status_code == 422
    assert "'day'" in missing.json()["detail"]
    unknown = client.post(
        "/api/v1/messages", json={**ORDER, "idempotency_key": "k3", "member_id": 999_999}
    )
    assert unknown.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    with engine.connect() as connection:
        count = connection.execute(text("SELECT COUNT(*) FROM messages")).scalar_one()
    assert count == 1


def test_a_notice_waits_out_quiet_hours_but_an_urgent_one_does_not(
    client: TestClient, member: int
) -> None:
    with clock.frozen(NIGHT):
        calm = client.post("/api/v1/messages", json={**ORDER, "member_id": member}).json()
        urgent = client.post(
            "/api/v1/messages",
            json={**ORDER, "idempotency_key": "fire", "urgent": True, "member_id": member},
        ).json()
    assert calm["send_at"].startswith("2026-12-03T00:00")  # 08:00 in Shanghai
    assert urgent["send_at"].startswith("2026-12-02T15:30")


def test_a_batch_answers_each_message_and_replays_repeated_keys(
    client: TestClient, member: int
) -> None:
    body = {
        "messages": [
            {**ORDER, "member_id": member},
            {"idempotency_key": "b", "phone": "13800000002", "text": "您的快递已到店。"},
            {**ORDER, "idempotency_key": "c", "phone": "12345"},
            {**ORDER, "member_id": member},
        ]
    }
    answer = client.post("/api/v1/messages:batch", json=body).json()
    assert (answer["accepted"], answer["refused"]) == (3, 1), answer["results"]
    statuses = [item["status"] for item in answer["results"]]
    assert statuses == [201, 201, 422, 200]
    assert answer["results"][3]["message"]["id"] == answer["results"][0]["message"]["id"]


def test_an_opted_out_member_still_gets_a_service_notice(
    engine: Engine, client: TestClient, member: int
) -> None:
    with session_scope(engine) as session:
        session.add(
            Suppression(
                phone_hash=phone_hash(PHONE), reason=SuppressionReason.OPTED_OUT, source="test"
            )
        )
    with clock.frozen(NOW):
        answer = client.post("/api/v1/messages", json={**ORDER, "member_id": member}).json()
    assert (answer["state"], answer["skip_reason"]) == ("queued", None)


def test_a_revoked_key_stops_sending_within_seconds(
    engine: Engine, client: TestClient, member: int
) -> None:
    with clock.frozen(NOW):
        assert client.post("/api/v1/messages", json={**ORDER, "member_id": member}).is_success
    with session_scope(engine) as session:
        accounts.revoke(db_session=session, name="pos")
    with clock.frozen(NOW + API_KEY_TRUSTED_FOR):
        refused = client.post(
            "/api/v1/messages", json={**ORDER, "idempotency_key": "late", "member_id": member}
        )
        batch = client.post(
            "/api/v1/messages:batch",
            json={"messages": [{**ORDER, "idempotency_key": "later", "member_id": member}]},
        )
    assert (refused.status_code, batch.status_code) == (401, 401)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "this API key is unknown or revoked"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 1


def test_refused_sends_are_problems_that_say_what_to_fix(
    engine: Engine, client: TestClient, member: int
) -> None:
    with session_scope(engine) as session:
        _, reader = accounts.create(db_session=session, name="reader", scopes=["messages:read"])
    anonymous = client.post(
        "/api/v1/messages", json={**ORDER, "member_id": member}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    assert "tidings apikey create" in anonymous.json()["detail"]
    lacking = client.post(
        "/api/v1/messages",
        json={**ORDER, "member_id": member},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert lacking.status_code == 403
    assert "messages:write" in lacking.json()["detail"]
    both = client.post("/api/v1/messages", json={**ORDER, "member_id": member, "phone": PHONE})
    assert both.status_code == 422
    assert "not both" in both.json()["detail"]
    assert both.json()["errors"][0]["location"] == ["body"]
    unkeyed = client.post("/api/v1/messages:batch", json={"messages": [{"member_id": member}]})
    assert unkeyed.status_code == 422
    assert ["body", "messages", 0, "idempotency_key"] in [
        error["location"] for error in unkeyed.json()["errors"]
    ]
    broken = client.post(
        "/api/v1/messages",
        content=b'{"idempotency_key": "x",',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["title"] == "Invalid request"
    for answer in (anonymous, lacking, both, unkeyed, broken):
        assert answer.headers["content-type"] == "application/problem+json"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 0


def test_one_key_sent_at_once_by_two_processes_sends_one_message(
    engine: Engine, client: TestClient, settings: Settings, member: int
) -> None:
    other = create_app(engine)  # another process serving the same store
    other.state.settings = settings
    body = {**ORDER, "member_id": member}

    def send(pair: tuple[TestClient, str]) -> httpx.Response:
        sender, key = pair
        return sender.post("/api/v1/messages", json={**body, "idempotency_key": key})

    with TestClient(other, headers=client.headers) as second, ThreadPoolExecutor(2) as pool:
        for attempt in range(5):
            key = f"twice-{attempt}"
            answers = list(pool.map(send, [(client, key), (second, key)]))
            assert [a.status_code // 100 for a in answers] == [2, 2], answers[0].text
            assert answers[0].json()["id"] == answers[1].json()["id"]
    with engine.connect() as connection:
        count = connection.execute(text("SELECT COUNT(*) FROM messages")).scalar_one()
    assert count == 5
