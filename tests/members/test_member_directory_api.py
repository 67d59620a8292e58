"""Integrators search members a page at a time, read one, export their data and erase them."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tidings.app import create_app
from tidings.audit.models import AuditEvent
from tidings.db import session_scope


@pytest.fixture
def client(cli, engine: Engine) -> TestClient:  # type: ignore[no-untyped-def]
    key = json.loads(cli("apikey", "create", "crm", "--json").output)["key"]
    client = TestClient(create_app(engine))
    client.headers["Authorization"] = f"Bearer {key}"
    members = [
        {"member_code": f"C{i}", "phone": f"+86 138 0013 80{i:02d}", "name": f"王{i}"}
        for i in range(7)
    ]
    assert client.post("/api/v1/members:batch", json={"members": members}).status_code == 200
    return client


def test_members_are_listed_a_page_at_a_time_with_a_next_link(client: TestClient) -> None:
    first = client.get("/api/v1/members", params={"per_page": 3})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [m["member_code"] for m in body["items"]] == ["C6", "C5", "C4"]
    seen = [m["member_code"] for m in body["items"]]
    while body["next"]:
        body = client.get(body["next"]).json()
        seen += [m["member_code"] for m in body["items"]]
    assert sorted(seen) == [f"C{i}" for i in range(7)] and len(seen) == 7
    assert body["page"] == 3


def test_members_are_found_by_phone_and_by_name(client: TestClient) -> None:
    by_phone = client.get("/api/v1/members", params={"q": "13800138003"}).json()
    assert [m["member_code"] for m in by_phone["items"]] == ["C3"]
    assert by_phone["items"][0]["phone"] == "+8613800138003"
    assert by_phone["next"] is None
    unknown_store = client.get("/api/v1/members", params={"store": "NOPE"})
    assert unknown_store.status_code == 404
    assert "NOPE" in unknown_store.json()["detail"]
    bad_page = client.get("/api/v1/members", params={"per_page": 0})
    assert bad_page.status_code == 422
    assert bad_page.headers["content-type"] == "application/problem+json"


def test_a_member_is_read_exported_and_erased_with_audit(
    client: TestClient, engine: Engine
) -> None:
    member_id = client.get("/api/v1/members", params={"q": "C2"}).json()["items"][0]["id"]
    assert client.get(f"/api/v1/members/{member_id}").json()["name"] == "王2"
    exported = client.get(f"/api/v1/members/{member_id}/export")
    assert exported.status_code == 200
    assert exported.json()["member"]["phone"] == "+8613800138002"

    erased = client.post(f"/api/v1/members/{member_id}/erase")
    assert erased.status_code == 200
    assert (erased.json()["phone"], erased.json()["name"]) == (None, None)
    again = client.post(f"/api/v1/members/{member_id}/erase")
    assert again.status_code == 410 and "erased" in again.json()["detail"]
    assert client.get(f"/api/v1/members/{member_id}/export").status_code == 410
    assert client.get("/api/v1/members", params={"q": "13800138002"}).json()["items"] == []
    assert client.get("/api/v1/members/999999").status_code == 404
    with session_scope(engine) as db_session:
        actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["member.export", "member.erase"]
