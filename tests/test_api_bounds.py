"""Numbers beyond what the store can hold answer 422 with the field's name, never a server
error (each case was found by the schemathesis run of tests/test_api_fuzz.py)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.app import create_app

TOO_BIG = 2**64


@pytest.fixture
def client(cli, engine: Engine) -> TestClient:  # type: ignore[no-untyped-def]
    key = json.loads(cli("apikey", "create", "bounds", "--json").output)["key"]
    client = TestClient(create_app(engine))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("get", f"/api/v1/members/{TOO_BIG}", None, "member_id"),
        ("get", f"/api/v1/campaigns/{TOO_BIG}", None, "campaign_id"),
        ("get", f"/api/v1/tickets/{TOO_BIG}", None, "ticket_id"),
        ("get", f"/api/v1/tickets?limit={-TOO_BIG}", None, "limit"),
        ("get", "/api/v1/tickets?limit=-1", None, "limit"),
        (
            "post",
            "/api/v1/events/location",
            {"member_id": TOO_BIG, "latitude": 31.2, "longitude": 121.4},
            "member_id",
        ),
        (
            "post",
            "/api/v1/coupons/ABC123/redeem",
            {"order_id": "T1", "amount_cents": TOO_BIG},
            "amount_cents",
        ),
    ],
)
def test_out_of_range_numbers_are_refused_by_name(
    client: TestClient, method: str, path: str, body: object, field: str
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["detail"]
