"""Operator-defined triggers: on an event type or a date field, with a condition, a delay, a
template, an expiry and an exit condition."""

from __future__ import annotations

import json
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from .conftest import add_member, add_profile, at, local, run_date_trigger, trigger_messages

VIEWED = {
    "name": "浏览未购",
    "event_type": "page_view",
    "template": "{surname|亲爱的会员}，您看中的{event_item|商品}还在等您",
    "condition": 'tier == "gold"',
    "delay_minutes": 120,
    "expiry_minutes": 600,
}


def _view(member_id: int, moment, item: str = "羊绒围巾") -> dict:  # type: ignore[no-untyped-def]
    return {
        "member_id": member_id,
        "kind": "page_view",
        "occurred_at": moment.isoformat(),
        "payload": {"item": item},
    }


def test_an_event_trigger_fires_after_its_delay_for_members_its_condition_matches(
    engine: Engine, client: TestClient
) -> None:
    for member_id, tier in ((1, "gold"), (2, "silver")):
        add_member(engine, member_id)
        add_profile(engine, member_id, tier=tier)
    created = client.post("/api/v1/triggers", json=VIEWED)
    assert created.status_code == 201, created.text
    assert created.json()["reacts_to"] == "event"
    moment = local(2026, 6, 10, 10)
    with at(moment):
        events = [_view(1, moment), _view(2, moment), _view(1, moment)]
        answer = client.post("/api/v1/events:batch", json={"events": events})
    assert answer.json()["fired"]["浏览未购"]["queued"] == 1
    sent = trigger_messages(engine, "浏览未购")
    assert sent["member_id"].to_list() == [1]
    assert sent["send_at"][0].astimezone(moment.tzinfo) == moment + timedelta(hours=2)
    assert "您看中的羊绒围巾还在等您" in sent["text"][0]


def test_bad_custom_triggers_are_refused_and_nothing_is_kept(
    engine: Engine, client: TestClient
) -> None:
    both = client.post("/api/v1/triggers", json=VIEWED | {"date_field": "birthday"})
    assert both.status_code == 422
    assert "not both" in both.json()["detail"]
    not_a_date = client.post(
        "/api/v1/triggers", json=VIEWED | {"event_type": None, "date_field": "tier"}
    )
    assert "'tier' is not a date field" in not_a_date.json()["detail"]
    bad_template = client.post("/api/v1/triggers", json=VIEWED | {"template": "{nope}"})
    assert bad_template.status_code == 422
    assert bad_template.headers["content-type"] == "application/problem+json"
    taken = client.post("/api/v1/triggers", json=VIEWED | {"name": "birthday"})
    assert "exists" in taken.json()["detail"]
    names = [t["name"] for t in client.get("/api/v1/triggers").json()]
    assert "浏览未购" not in names


def test_a_date_trigger_fires_days_before_its_field_unless_the_exit_matches(
    engine: Engine,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    add_member(engine, 1)
    add_member(engine, 2)
    add_profile(engine, 1, next_run_out_on=date(2026, 6, 15), orders_90d=1)
    add_profile(engine, 2, next_run_out_on=date(2026, 6, 15), orders_90d=9)
    created = cli(
        "trigger",
        "create",
        "补货提醒",
        "--date-field",
        "next_run_out_on",
        "--offset-days",
        "-2",
        "--template",
        "{surname|亲爱的会员}，家里的常备品快用完了，{next_run_out_on}前来补货吧",
        "--exit-condition",
        "orders_90d > 5",
        "--json",
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["reacts_to"] == "date"
    assert run_date_trigger(engine, "补货提醒", local(2026, 6, 12))["fired"] == 0
    assert run_date_trigger(engine, "补货提醒", local(2026, 6, 13))["queued"] == 1
    assert run_date_trigger(engine, "补货提醒", local(2026, 6, 14))["fired"] == 0
    sent = trigger_messages(engine, "补货提醒")
    assert sent["member_id"].to_list() == [1]
    assert "6月15日前来补货吧" in sent["text"][0]
