"""Every /api/v1 endpoint names the scope it needs: a key without it gets 403, no key 401."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.accounts import service
from tidings.accounts.scopes import SCOPES
from tidings.app import create_app
from tidings.db import session_scope

OPEN_ROUTES = {("get", "/api/v1/health")}


def _client(engine: Engine, *scopes: str) -> TestClient:
    with session_scope(engine) as db_session:
        _row, key = service.create(
            db_session=db_session, name=f"key-{'-'.join(scopes)}", scopes=list(scopes)
        )
    client = TestClient(create_app(engine))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _operations(client: TestClient) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in paths.items()
        if path.startswith("/api/v1/")
        for method in operations
        if (method, path) not in OPEN_ROUTES
    ]


def test_every_api_route_declares_a_scope(engine: Engine) -> None:
    client = _client(engine, "coupons:read")
    operations = _operations(client)
    assert len(operations) > 40
    undeclared = []
    for method, path in operations:
        response = client.request(method, path, json={})
        allowed = (method, path) in {("get", "/api/v1/coupons"), ("get", "/api/v1/coupons/1")}
        if allowed:
            assert response.status_code != 403, response.text
            continue
        needed = re.search(r"lacks the scope '([^']+)'", response.text)
        if response.status_code != 403 or needed is None or needed.group(1) not in SCOPES:
            undeclared.append(f"{method.upper()} {path}: {response.status_code}")
        else:
            assert response.headers["content-type"] == "application/problem+json"
    assert undeclared == []


def test_every_api_route_but_health_needs_a_key(engine: Engine) -> None:
    client = TestClient(create_app(engine))
    for method, path in _operations(client):
        response = client.request(method, path, json={})
        assert response.status_code == 401, f"{method} {path}"
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("scope", "allowed", "refused"),
    [
        ("members:read", ("get", "/api/v1/members"), ("post", "/api/v1/members:batch")),
        ("members:write", ("post", "/api/v1/members:batch"), ("get", "/api/v1/members")),
        ("campaigns:read", ("get", "/api/v1/campaigns"), ("post", "/api/v1/campaigns")),
        ("reports:read", ("get", "/api/v1/reports/health"), ("get", "/api/v1/campaigns")),
        ("events:write", ("post", "/api/v1/events:batch"), ("get", "/api/v1/triggers")),
        ("segments:read", ("get", "/api/v1/segments"), ("post", "/api/v1/segments")),
        ("tickets:read", ("get", "/api/v1/tickets"), ("post", "/api/v1/tickets/1/answer")),
        ("coupons:redeem", ("post", "/api/v1/coupons/X/redeem"), ("get", "/api/v1/coupons/X")),
    ],
)
def test_a_key_may_do_what_its_scope_says_and_no_more(
    sqlite_engine: Engine, scope: str, allowed: tuple[str, str], refused: tuple[str, str]
) -> None:
    client = _client(sqlite_engine, scope)
    bodies = {"/api/v1/members:batch": {"members": []}, "/api/v1/events:batch": {"events": []}}
    answer = client.request(allowed[0], allowed[1], json=bodies.get(allowed[1], {}))
    assert answer.status_code != 403, answer.text
    assert answer.status_code < 500
    denied = client.request(refused[0], refused[1], json={})
    assert denied.status_code == 403
    assert "lacks the scope" in denied.json()["detail"]


def test_an_area_wildcard_grants_each_scope_of_the_area(sqlite_engine: Engine) -> None:
    client = _client(sqlite_engine, "members:*")
    assert client.get("/api/v1/members").status_code == 200
    written = client.post("/api/v1/members:batch", json={"members": []})
    assert written.status_code == 200
    assert client.get("/api/v1/campaigns").status_code == 403


def test_keys_are_created_with_scopes_and_unknown_ones_are_refused(cli) -> None:
    made = cli("apikey", "create", "till", "--scope", "coupons:redeem", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["scopes"] == ["coupons:redeem"]
    assert "coupons:redeem" in cli("apikey", "list").output
    wrong = cli("apikey", "create", "pos", "--scope", "coupon:redeem")
    assert wrong.exit_code == 2
    assert "unknown scope 'coupon:redeem'" in wrong.output
    assert "pos" not in cli("apikey", "list").output
