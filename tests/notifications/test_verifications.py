"""Verification codes: sent at once, checked right, wrong, expired and too often, limited
per phone, and never readable back: the ledger keeps the code only until it is sent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.config import Settings
from tidings.db import session_scope
from tidings.notifications import callbacks

from .conftest import NIGHT, NOW, PHONE, run_worker

CODE = re.compile(r"\d{6}")


def _client(engine: Engine, settings: Settings, **limits: str) -> TestClient:
    with session_scope(engine) as db_session:
        _, key = accounts.create(db_session=db_session, name="login")
    app = create_app(engine)
    app.state.settings = settings.model_copy(update=limits)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def limited(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    """A client of an app that allows two codes per phone an hour."""
    with _client(engine, settings, verification_limit_per_phone="2/hour") as test_client:
        yield test_client


def _ask(client: TestClient, key: str, at: object = NOW, phone: str = PHONE) -> dict[str, object]:
    body = {"idempotency_key": key, "kind": "verification", "phone": phone}
    with clock.frozen(at):  # type: ignore[arg-type]
        answer = client.post("/api/v1/messages", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _check(
    client: TestClient, verification: object, code: str, at: object = NOW
) -> dict[str, object]:
    with clock.frozen(at):  # type: ignore[arg-type]
        answer = client.post(f"/api/v1/verifications/{verification}/check", json={"code": code})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _received_code(settings: Settings) -> str:
    assert settings.simulator_inbox is not None
    last = settings.simulator_inbox.read_text().splitlines()[-1]
    found = CODE.search(json.loads(last)["text"])
    assert found is not None
    return found.group()


def test_the_right_code_verifies_once_and_is_never_shown_back(
    engine: Engine, client: TestClient, settings: Settings
) -> None:
    sent = _ask(client, "login-1")
    run_worker(engine, settings)
    code = _received_code(settings)
    callbacks.run_pass(engine, settings=settings)
    shown = client.get(f"/api/v1/messages/{sent['id']}").json()
    assert code not in shown["text"] and "••••••" in shown["text"]
    with engine.connect() as connection:
        stored = " ".join(str(v) for v in connection.execute(text("SELECT * FROM messages")).one())
        kept = " ".join(
            str(v) for v in connection.execute(text("SELECT * FROM verifications")).one()
        )
    assert code not in stored and code not in kept

    wrong = "000000" if code != "000000" else "111111"
    assert _check(client, sent["verification_id"], wrong) == {
        "verified": False,
        "status": "wrong_code",
        "attempts_left": 4,
    }
    assert _check(client, sent["verification_id"], code)["status"] == "verified"
    assert _check(client, sent["verification_id"], code)["status"] == "already_verified"


def test_a_code_expires_and_too_many_wrong_tries_lock_it(
    engine: Engine, client: TestClient, settings: Settings
) -> None:
    sent = _ask(client, "login-2")
    run_worker(engine, settings)
    code = _received_code(settings)
    late = NOW + timedelta(minutes=settings.verification_valid_minutes, seconds=1)
    assert _check(client, sent["verification_id"], code, at=late)["status"] == "expired"

    wrong = "000000" if code != "000000" else "111111"
    statuses = [_check(client, sent["verification_id"], wrong)["status"] for _ in range(5)]
    assert statuses == ["wrong_code"] * 4 + ["locked"]
    assert _check(client, sent["verification_id"], code)["status"] == "locked"
    unknown = client.post("/api/v1/verifications/nope/check", json={"code": "123456"})
    assert unknown.status_code == 404


def test_a_phone_gets_only_so_many_codes(engine: Engine, limited: TestClient) -> None:
    _ask(limited, "a")
    _ask(limited, "b")
    body = {"idempotency_key": "c", "kind": "verification", "phone": "138-0000-0001"}
    refused = limited.post("/api/v1/messages", json=body)
    assert refused.status_code == 429
    assert "2 per hour" in refused.json()["detail"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 2


def test_a_code_goes_at_once_even_at_night(client: TestClient) -> None:
    sent = _ask(client, "night", at=NIGHT, phone="+8613900000009")
    assert (sent["state"], sent["send_at"]) == ("queued", "2026-12-02T15:30:00Z")


def test_one_address_gets_only_so_many_codes_and_checks(engine: Engine, settings: Settings) -> None:
    with _client(engine, settings, verification_limit_per_ip="3/hour") as client:
        first = _ask(client, "ip-1", phone="+8613900000011")
        _ask(client, "ip-2", phone="+8613900000012")
        _check(client, first["verification_id"], "000000")
        body = {"idempotency_key": "ip-3", "kind": "verification", "phone": "+8613900000013"}
        refused = client.post("/api/v1/messages", json=body)
        check = client.post(
            f"/api/v1/verifications/{first['verification_id']}/check", json={"code": "1"}
        )
        notice = client.post(
            "/api/v1/messages",
            json={"idempotency_key": "n", "phone": "+8613900000013", "text": "到货提醒"},
        )
    assert (refused.status_code, check.status_code) == (429, 429)
    assert "address" in refused.json()["detail"]
    assert notice.status_code == 201  # notices are not limited
