"""Weather alerts to the members of a city's stores, once per alert; an offer near a store,
within the radius, at most once per member per 7 days."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from .conftest import add_member, add_store, at, local, trigger_messages

# 徐家汇 (Shanghai) and a point about 1.1 km east of it; 人民广场 is about 6 km away.
XUJIAHUI = (31.1955, 121.4365)
NEARBY = (31.1955, 121.4480)
PEOPLES_SQUARE = (31.2323, 121.4737)


def test_a_weather_alert_reaches_the_citys_members_once(engine: Engine, client: TestClient) -> None:
    shanghai = add_store(engine, code="SH01", city="上海")
    beijing = add_store(engine, code="BJ01", city="北京")
    add_member(engine, 1, store_id=shanghai)
    add_member(engine, 2, store_id=beijing)
    add_member(engine, 3, store_id=shanghai, opted_out=True)
    alert = {"alert_id": "SH-RAIN-0610", "city": "上海", "kind": "rain"}
    with at(local(2026, 6, 10, 9)):
        first = client.post("/api/v1/events/weather", json=alert)
        again = client.post("/api/v1/events/weather", json=alert)
    assert first.status_code == 200, first.text
    assert first.json()["fired"]["weather"]["queued"] == 1
    assert again.json() == {
        "stored": False,
        "fired": {"weather": {"occasions": 2, "fired": 0, "queued": 0, "skipped": {}}},
        "detail": None,
    }
    sent = trigger_messages(engine, "weather")
    assert sent["member_id"].to_list() == [1, 3]
    assert sent["state"].to_list() == ["queued", "skipped"]
    assert "雨天出行请带好雨具" in sent["text"][0]


def test_an_unknown_alert_kind_is_refused(engine: Engine, client: TestClient) -> None:
    answer = client.post(
        "/api/v1/events/weather", json={"alert_id": "x", "city": "上海", "kind": "snow"}
    )
    assert answer.status_code == 422
    assert "rain" in answer.json()["detail"]


def test_an_offer_near_a_store_at_most_once_a_week(engine: Engine, client: TestClient) -> None:
    add_store(engine, name="徐家汇店", latitude=XUJIAHUI[0], longitude=XUJIAHUI[1])
    add_member(engine, 1)
    ping = {"member_id": 1, "latitude": NEARBY[0], "longitude": NEARBY[1]}
    with at(local(2026, 6, 10, 12)):
        near = client.post("/api/v1/events/location", json=ping)
    assert near.status_code == 200, near.text
    assert near.json()["detail"] == "near 徐家汇店"
    assert near.json()["fired"]["geofence"]["queued"] == 1
    with at(local(2026, 6, 16, 12)):
        client.post("/api/v1/events/location", json=ping)
    assert trigger_messages(engine, "geofence").height == 1
    with at(local(2026, 6, 17, 12, 1)):
        client.post("/api/v1/events/location", json=ping)
    sent = trigger_messages(engine, "geofence")
    assert sent.height == 2
    assert "您就在徐家汇店附近" in sent["text"][0]


def test_far_from_every_store_nothing_is_sent(engine: Engine, client: TestClient) -> None:
    add_store(engine, latitude=XUJIAHUI[0], longitude=XUJIAHUI[1])
    add_member(engine, 1)
    ping = {"member_id": 1, "latitude": PEOPLES_SQUARE[0], "longitude": PEOPLES_SQUARE[1]}
    with at(local(2026, 6, 10, 12)):
        far = client.post("/api/v1/events/location", json=ping)
        unknown = client.post("/api/v1/events/location", json=ping | {"member_id": 42})
    assert far.json()["detail"] == "no store within the radius"
    assert trigger_messages(engine, "geofence").height == 0
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


def test_a_wider_radius_set_through_the_api_reaches_further(
    engine: Engine, client: TestClient
) -> None:
    add_store(engine, latitude=XUJIAHUI[0], longitude=XUJIAHUI[1])
    add_member(engine, 1)
    bad = client.patch("/api/v1/triggers/geofence", json={"config": {"radius_km": -1}})
    assert bad.status_code == 422
    wider = client.patch("/api/v1/triggers/geofence", json={"config": {"radius_km": 8}})
    assert wider.json()["config"]["radius_km"] == 8
    ping = {"member_id": 1, "latitude": PEOPLES_SQUARE[0], "longitude": PEOPLES_SQUARE[1]}
    with at(local(2026, 6, 10, 12) + timedelta(minutes=1)):
        client.post("/api/v1/events/location", json=ping)
    assert trigger_messages(engine, "geofence").height == 1
