"""API keys protect every /api/v1 route but health."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tidings import clock
from tidings.accounts.models import ApiKey
from tidings.app import create_app
from tidings.db import session_scope


def test_health_needs_no_key(engine: Engine) -> None:
    client = TestClient(create_app(engine))
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_created_key_opens_the_api_and_only_its_hash_is_stored(cli, engine: Engine) -> None:
    result = cli("apikey", "create", "pos-sync", "--json")
    assert result.exit_code == 0, result.output
    key = json.loads(result.output)["key"]
    with session_scope(engine) as db_session:
        stored = db_session.scalars(select(ApiKey)).one()
    assert key not in (stored.key_hash, stored.prefix)

    client = TestClient(create_app(engine))
    body = {"members": []}
    unauthorised = client.post("/api/v1/members:batch", json=body)
    assert unauthorised.status_code == 401
    assert unauthorised.headers["content-type"] == "application/problem+json"
    wrong = client.post(
        "/api/v1/members:batch", json=body, headers={"Authorization": "Bearer tid_wrong"}
    )
    assert wrong.status_code == 401
    accepted = client.post(
        "/api/v1/members:batch", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert accepted.status_code == 200
    assert accepted.json()["rows"] == 0


def test_revoked_key_is_refused(cli, engine: Engine) -> None:
    key = json.loads(cli("apikey", "create", "old", "--json").output)["key"]
    assert cli("apikey", "revoke", "old").exit_code == 0
    client = TestClient(create_app(engine))
    response = client.get("/api/v1/health", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    refused = client.post(
        "/api/v1/members:batch", json={"members": []}, headers={"Authorization": f"Bearer {key}"}
    )
    assert refused.status_code == 401


def test_duplicate_key_name_is_a_clear_error(cli) -> None:
    assert cli("apikey", "create", "crm").exit_code == 0
    result = cli("apikey", "create", "crm")
    assert result.exit_code == 2
    assert "exists already" in result.output


def test_a_keys_last_use_is_noted_at_most_once_a_minute(cli, engine: Engine) -> None:
    key = json.loads(cli("apikey", "create", "pos-sync", "--json").output)["key"]
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})

    def last_used() -> datetime | None:
        with session_scope(engine) as db_session:
            return db_session.scalars(select(ApiKey.last_used_at)).one()

    start = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    with clock.frozen(start):
        assert client.get("/api/v1/campaigns").status_code == 200
    with clock.frozen(start + timedelta(seconds=59)):
        assert client.get("/api/v1/campaigns").status_code == 200
    assert last_used() == start
    with clock.frozen(start + timedelta(minutes=1)):
        assert client.get("/api/v1/campaigns").status_code == 200
    assert last_used() == start + timedelta(minutes=1)
