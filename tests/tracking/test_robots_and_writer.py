"""Telling people from robots by user agent and headers, and the click writer's batches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from campaigns.conftest import add_members, midday_zone
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.db import session_scope
from tidings.tracking.clicks import ClickRecord, ClickWriter
from tidings.tracking.robots import robot_reason
from tidings.tracking.targets import Utm, check_target, target_url

from .conftest import TARGET, create_campaign, link_rows, plan_campaign, send_campaign

PEOPLE = [
    # WeChat's and QQ's own in-app browsers: a member tapping the link inside the app.
    "Mozilla/5.0 (Linux; Android 13; V2217A Build/TP1A; wv) AppleWebKit/537.36 (KHTML, like"
    " Gecko) Version/4.0 Chrome/111.0 Mobile Safari/537.36 XWEB/1110 MMWEBSDK/20230805"
    " MMWEBID/1234 MicroMessenger/8.0.42.2460(0x28002A3B) WeChat/arm64 Weixin NetType/WIFI",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Mobile/15E148 QQ/8.9.80.617 V1_IPH_SQ_8.9.80_1_APP_A Pixel/1170",
    "Mozilla/5.0 (Linux; Android 9; CUBOT_X19) AppleWebKit/537.36 Chrome/120.0 Mobile",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
]


@pytest.mark.parametrize("agent", PEOPLE)
def test_browsers_and_in_app_browsers_are_people(agent: str) -> None:
    assert robot_reason("GET", agent, {}) is None


def test_a_header_that_is_no_prefetch_leaves_a_person_a_person() -> None:
    assert robot_reason("GET", PEOPLE[0], {"purpose": "navigate"}) is None


@pytest.mark.usefixtures("short_links")
def test_a_click_on_a_link_removed_meanwhile_does_not_lose_the_others(engine: Engine) -> None:
    add_members(engine, 2, timezone=midday_zone())
    campaign = create_campaign(engine)
    plan_campaign(engine, campaign)
    send_campaign(engine, campaign)
    kept, removed = link_rows(engine, campaign)["id"].to_list()
    with session_scope(engine) as session:
        session.execute(text("DELETE FROM short_links WHERE id = :id"), {"id": removed})
    writer = ClickWriter(engine, flush_seconds=3600)
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    writer.record(ClickRecord(removed, at, "Mozilla/5.0", None))
    writer.record(ClickRecord(kept, at, "Mozilla/5.0", None))
    writer.close()
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT link_id, clicked_at FROM clicks")).all()
    assert [row[0] for row in rows] == [kept]
    assert writer.waiting() == 0


@pytest.mark.usefixtures("short_links")
def test_the_api_refuses_a_link_that_is_no_address_and_creates_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        _, key = accounts.create(db_session=session, name="integrator")
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {key}"})
    body = {
        "name": "周末鲜果",
        "rule": "consent == true",
        "variants": [{"template": "鲜果8折 {link}"}],
        "link": "javascript:alert(1)",
    }
    answer = client.post("/api/v1/campaigns", json=body)
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "full http(s) address" in answer.json()["detail"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM campaigns")).scalar_one() == 0
    created = client.post("/api/v1/campaigns", json={**body, "link": TARGET})
    assert created.status_code == 201


def test_a_target_in_chinese_is_sent_percent_encoded_with_its_query_kept() -> None:
    url = check_target(" https://shop.example.com/水果/节?store=徐汇&a=%20b#top ")
    assert url == (
        "https://shop.example.com/%E6%B0%B4%E6%9E%9C/%E8%8A%82?store=%E5%BE%90%E6%B1%87&a=%20b#top"
    )
    utm = Utm("sms", "sms", "7")
    assert target_url(url, utm, variant="B") == (
        "https://shop.example.com/%E6%B0%B4%E6%9E%9C/%E8%8A%82?store=%E5%BE%90%E6%B1%87&a=%20b"
        "&utm_source=sms&utm_medium=sms&utm_campaign=7&utm_content=B#top"
    )
