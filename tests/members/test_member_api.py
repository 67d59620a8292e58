"""The batch API cleans members and order lines as the CSV import does, with per-row errors."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.app import create_app


@pytest.fixture
def client(cli, engine: Engine) -> TestClient:  # type: ignore[no-untyped-def]
    key = json.loads(cli("apikey", "create", "crm", "--json").output)["key"]
    client = TestClient(create_app(engine))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def test_members_batch_cleans_and_reports_each_bad_row(client: TestClient, cli) -> None:
    members = [
        {"member_code": "A1", "phone": "+86 138 0013 8000", "name": " 张三 ", "gender": "女士",
         "birthday": "1990年1月2日", "points": 120, "consent": True,
         "registered_at": "2024-01-01"},
        {"phone": "1380013800", "name": "李四"},
        {"member_code": "A1", "points": "150", "registered_at": "2024-05-01 10:00"},
        {"member_code": "A3", "birthday": "1990-02-30"},
    ]  # fmt: skip
    response = client.post("/api/v1/members:batch", json={"members": members})
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("rows", "inserted", "merged_duplicates", "rejected")} == {
        "rows": 4, "inserted": 1, "merged_duplicates": 1, "rejected": 2,
    }  # fmt: skip
    assert body["errors"] == [
        {"index": 1, "reason": "phone '1380013800' has 10 digits; a mainland mobile number has 11"},
        {"index": 3, "reason": "birthday '1990-02-30' is not a date"},
    ]
    shown = json.loads(cli("member", "show", "A1", "--json").output)
    assert (shown["name"], shown["gender"], shown["birthday"]) == ("张三", "F", "1990-01-02")
    assert shown["points"] == 150 and shown["consent"] == "opted_in"
    again = client.post("/api/v1/members:batch", json={"members": members}).json()
    assert (again["inserted"], again["updated"]) == (0, 0)


def test_batches_beyond_the_limit_are_refused(client: TestClient) -> None:
    response = client.post("/api/v1/members:batch", json={"members": [{}] * 10_001})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "at most 10,000" in response.json()["detail"]
    unknown = client.post("/api/v1/members:batch", json={"members": [{"mobile": "1"}]})
    assert unknown.status_code == 422


def test_orders_batch_groups_lines_and_is_idempotent(client: TestClient) -> None:
    client.post("/api/v1/members:batch", json={"members": [{"member_code": "A1"}]})
    lines = [
        {"order_id": "W1", "ordered_at": "2024-05-01 10:00", "member_code": "A1", "amount": 12.5},
        {"order_id": "W1", "ordered_at": "2024-05-01 10:00", "member_code": "A1", "amount": "0.35",
         "discount": True},
        {"order_id": "W2", "ordered_at": "2024-05-01 10:00", "phone": "13900139000", "amount": "1"},
        {"order_id": "W3", "ordered_at": "yesterday", "member_code": "A1", "amount": "1"},
    ]  # fmt: skip
    body = client.post("/api/v1/orders:batch", json={"orders": lines}).json()
    assert (body["rows"], body["inserted"], body["rejected"]) == (4, 2, 2)
    assert [error["index"] for error in body["errors"]] == [2, 3]
    assert "is not known" in body["errors"][0]["reason"]
    created = client.post("/api/v1/orders:batch", json={"orders": lines, "create_members": True})
    assert (created.json()["inserted"], created.json()["rejected"]) == (1, 1)
