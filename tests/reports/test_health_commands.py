"""`tidings report health` and GET /api/v1/reports/health show the same rates and breaches;
a bad number of days is refused with a clear message."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings import clock
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.config import Settings
from tidings.db import session_scope
from tidings.reports.health import check_health

from .health_world import NOW, SENT, build


def _store_breaches(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(check_health(db_session=session, days=7, now=NOW, settings=Settings()))


def test_the_cli_shows_rates_findings_and_stored_breaches(engine: Engine, cli: Any) -> None:
    weekend = build(engine)["weekend"]
    stored = _store_breaches(engine)
    with clock.frozen(NOW):
        shown = cli("report", "health", "--days", "7")
        as_json = json.loads(cli("report", "health", "--days", "7", "--json").output)
    assert shown.exit_code == 0
    assert "BREACH" in shown.output
    assert "95.00%" in shown.output  # the weekend send's delivery rate
    assert "reply rate 2.0% is below the healthy 5%-8%" in shown.output
    assert shown.output.count("stored breach (not posted yet)") == stored
    rows = {(row["scope"], row["key"]): row for row in as_json["rows"]}
    campaign = rows[("campaign", str(weekend.campaign_id))]
    assert campaign["delivered"] == weekend.delivered
    assert campaign["opted_out"] == weekend.opted_out
    assert as_json["thresholds"]["delivery_min"] == 0.98
    assert len(as_json["breaches"]) == stored
    assert {breach["day"] for breach in as_json["breaches"]} == {SENT.date().isoformat()}


def test_the_cli_refuses_days_below_one(engine: Engine, cli: Any) -> None:
    refused = cli("report", "health", "--days", "0")
    assert refused.exit_code == 2
    assert "--days must be at least 1, not 0" in refused.output


def test_the_cli_says_when_nothing_was_sent(engine: Engine, cli: Any) -> None:
    with clock.frozen(NOW):
        shown = cli("report", "health", "--days", "2")
    assert shown.exit_code == 0 and "nothing was sent in the last 2 days" in shown.output


def test_the_api_gives_the_same_health_behind_the_key(engine: Engine) -> None:
    weekend = build(engine)["weekend"]
    stored = _store_breaches(engine)
    with session_scope(engine) as session:
        _, key = accounts.create(db_session=session, name="console")
    app = create_app(engine)
    assert TestClient(app).get("/api/v1/reports/health").status_code == 401
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    with clock.frozen(NOW):
        answer = client.get("/api/v1/reports/health", params={"days": 7})
        refused = client.get("/api/v1/reports/health", params={"days": 0})
    assert answer.status_code == 200
    body = answer.json()
    campaign = next(row for row in body["rows"] if row["key"] == str(weekend.campaign_id))
    assert campaign["complained"] == weekend.complained and campaign["healthy"] is False
    assert len(body["breaches"]) == stored
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "days" in refused.json()["detail"]
