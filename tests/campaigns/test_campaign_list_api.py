"""GET /api/v1/campaigns answers a page at a time, newest first, filtered by state."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.app import create_app


def test_campaigns_are_listed_a_page_at_a_time_and_by_state(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    key = json.loads(cli("apikey", "create", "crm", "--json").output)["key"]
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    ids = []
    for name in ("一月", "二月", "三月"):
        body = {"name": name, "rule": "points >= 0", "variants": [{"template": "会员日"}]}
        made = client.post("/api/v1/campaigns", json=body)
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    assert client.post(f"/api/v1/campaigns/{ids[0]}/cancel").status_code == 200

    first = client.get("/api/v1/campaigns", params={"per_page": 2}).json()
    assert [c["name"] for c in first["items"]] == ["三月", "二月"]
    second = client.get(first["next"]).json()
    assert [c["name"] for c in second["items"]] == ["一月"] and second["next"] is None
    cancelled = client.get("/api/v1/campaigns", params={"status": "cancelled"}).json()
    assert [c["id"] for c in cancelled["items"]] == [ids[0]]
    wrong = client.get("/api/v1/campaigns", params={"status": "finished"})
    assert wrong.status_code == 422 and "status" in wrong.json()["detail"]
