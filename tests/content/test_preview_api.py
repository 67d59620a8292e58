"""The template preview of the API answers what the console's editor shows: the text a member
would read, its parts and cost, and each finding in place."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.app import create_app


@pytest.fixture
def client(cli, engine: Engine) -> TestClient:  # type: ignore[no-untyped-def]
    key = json.loads(cli("apikey", "create", "cms", "--json").output)["key"]
    client = TestClient(create_app(engine))
    client.headers["Authorization"] = f"Bearer {key}"
    members = [
        {
            "member_code": "P1",
            "phone": "13800138000",
            "name": "林小雨",
            "gender": "女",
            "points": 320,
        }
    ]
    assert client.post("/api/v1/members:batch", json={"members": members}).status_code == 200
    return client


def test_a_template_is_previewed_for_a_member(client: TestClient) -> None:
    body = {"text": "{surname}您好，您有{points}积分可兑换好礼", "member": "P1"}
    response = client.post("/api/v1/templates:preview", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["skip_reason"] is None, answer
    assert "320积分" in answer["text"] and answer["text"].count("林") == 1
    assert answer["characters"] == len(answer["text"])
    assert answer["segments"] >= 1 and answer["cost_cents"] > 0


def test_a_finding_is_placed_in_the_text(client: TestClient) -> None:
    answer = client.post("/api/v1/templates:preview", json={"text": "全网最低价，快来抢购"}).json()
    absolute = [f for f in answer["findings"] if f["code"] == "absolute_term"]
    assert absolute, answer["findings"]
    finding = absolute[0]
    assert answer["text"][finding["start"] : finding["end"]] == finding["term"]


def test_bad_templates_and_unknown_members_are_clear_errors(client: TestClient) -> None:
    broken = client.post("/api/v1/templates:preview", json={"text": "您好{surname"})
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
    assert broken.json()["detail"]
    unknown = client.post("/api/v1/templates:preview", json={"text": "您好", "member": "NOPE"})
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["detail"]


def test_the_preference_link_is_previewed_as_the_member_would_get_it(
    client: TestClient,
) -> None:
    text = "{surname}，选择您想收的消息：{preference_link}"
    mine = client.post("/api/v1/templates:preview", json={"text": text, "member": "P1"}).json()
    without = {"text": "选择您想收的消息：{preference_link}"}
    sample = client.post("/api/v1/templates:preview", json=without).json()
    link = mine["text"].split("：")[1].split(" ")[0]
    assert "/p/" in link and "/p/" in sample["text"]
    # Counted with the link in it, and the brand's own link is no finding.
    assert mine["characters"] == len(mine["text"])
    assert not [f for f in mine["findings"] if f["code"] == "foreign_link"]
    token = link.rsplit("/", 1)[1]
    member = client.get(f"/p/{token}")
    assert member.status_code == 200 and "消息偏好" in member.text
