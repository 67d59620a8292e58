"""POST /api/v1/segments:sample answers the audience's size and who its first members are,
as the console's segment editor shows them."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.app import create_app


def test_a_rule_is_counted_and_sampled_with_its_members(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    key = json.loads(cli("apikey", "create", "crm", "--json").output)["key"]
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    members = [
        {"member_code": f"S{i}", "phone": f"1370013700{i}", "tier": "gold" if i < 3 else "silver"}
        for i in range(5)
    ]
    assert client.post("/api/v1/members:batch", json={"members": members}).status_code == 200

    answer = client.post("/api/v1/segments:sample", json={"rule": 'tier == "gold"'})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == 3
    assert sorted(m["member_code"] for m in body["members"]) == ["S0", "S1", "S2"]
    assert {m["tier"] for m in body["members"]} == {"gold"}

    broken = client.post("/api/v1/segments:sample", json={"rule": 'tier == "gold" and'})
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
