"""The campaigns under /api/v1/campaigns: the same operations as the commands, with problems."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.db import session_scope

from .conftest import add_members, midday_zone

CAMPAIGN = {
    "name": "母婴节",
    "rule": "consent == true",
    "variants": [
        {"template": "{surname}，母婴节奶粉满300减60", "weight": 1},
        {"template": "{surname}，母婴节纸尿裤第二件半价", "weight": 1},
    ],
    "holdout": 0.1,
    "rollout": [10, 100],
}


@pytest.fixture
def client(engine: Engine) -> TestClient:
    with session_scope(engine) as db_session:
        _, key = accounts.create(db_session=db_session, name="console")
    return TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})


def test_create_plan_review_send_and_steer(engine: Engine, client: TestClient) -> None:
    add_members(engine, 200, timezone=midday_zone())
    created = client.post("/api/v1/campaigns", json=CAMPAIGN)
    assert created.status_code == 201
    campaign = created.json()["id"]

    planned = client.post(f"/api/v1/campaigns/{campaign}/plan").json()
    assert planned["audience"] == 200
    assert planned["holdout"] + planned["planned"] == 200
    review = client.get(f"/api/v1/campaigns/{campaign}/review").json()
    assert [v["name"] for v in review["variants"]] == ["A", "B"]
    assert sum(v["messages"] for v in review["variants"]) == planned["planned"]
    assert review["first_messages"][0]["phone"].count("*") == 4

    sent = client.post(f"/api/v1/campaigns/{campaign}/send").json()
    assert sent["status"] == "running" and sent["queued"] > 0
    paused = client.post(f"/api/v1/campaigns/{campaign}/pause").json()
    assert paused["status"] == "paused"
    status = client.get(f"/api/v1/campaigns/{campaign}").json()
    assert status["rollout_stages"] == [10, 100]
    assert client.post(f"/api/v1/campaigns/{campaign}/cancel").json()["status"] == "cancelled"

    member = 1
    explained = client.get(f"/api/v1/campaigns/{campaign}/members/{member}/explanation")
    assert explained.status_code == 200
    assert explained.json()["explanation"].startswith("It ")


def test_errors_are_problems_a_person_can_act_on(engine: Engine, client: TestClient) -> None:
    missing = client.post("/api/v1/campaigns/42/plan")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "there is no campaign 42" in missing.json()["detail"]

    bad_rule = client.post("/api/v1/campaigns", json={**CAMPAIGN, "rule": "teir == 'gold'"})
    assert bad_rule.status_code == 422
    assert "did you mean 'tier'" in bad_rule.json()["detail"]

    bad_template = client.post(
        "/api/v1/campaigns", json={**CAMPAIGN, "variants": [{"template": "{nmae}"}]}
    )
    assert bad_template.status_code == 422
    assert "unknown field 'nmae'" in bad_template.json()["detail"]

    created = client.post("/api/v1/campaigns", json=CAMPAIGN).json()["id"]
    unplanned = client.post(f"/api/v1/campaigns/{created}/send")
    assert unplanned.status_code == 409
    assert "has no plan yet" in unplanned.json()["detail"]

    no_key = TestClient(create_app(engine)).get("/api/v1/campaigns")
    assert no_key.status_code == 401
