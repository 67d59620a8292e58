"""`tidings links show` and `tidings links clicks`: where a link leads and who opened it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from campaigns.conftest import add_members, midday_zone
from tidings.app import create_app

from .conftest import SHORT_DOMAIN, create_campaign, link_rows, plan_campaign, send_campaign

pytestmark = pytest.mark.usefixtures("short_links")


def test_show_and_count_a_campaigns_clicks(engine: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    add_members(engine, 3, timezone=midday_zone())
    campaign = create_campaign(engine)
    plan_campaign(engine, campaign)
    send_campaign(engine, campaign)
    link = link_rows(engine, campaign).row(0, named=True)
    with TestClient(create_app(engine), follow_redirects=False) as client:
        client.get(f"/s/{link['code']}", headers={"User-Agent": "Mozilla/5.0 (Android 14)"})
        client.get(f"/s/{link['code']}", headers={"User-Agent": "TelegramBot (like TwitterBot)"})
    shown = cli("links", "show", link["code"], "--json")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["url"] == f"{SHORT_DOMAIN}/s/{link['code']}"
    assert body["target_url"] == link["target_url"]
    assert (body["member_id"], body["clicks"], body["robot_requests"]) == (link["member_id"], 1, 1)
    assert [r["robot"] for r in body["requests"]] == [None, "preview:telegram"]
    counted = json.loads(cli("links", "clicks", str(campaign), "--json").output)
    assert counted == {
        "campaign_id": campaign,
        "links": 3,
        "clicked_messages": 1,
        "clicks": 1,
        "robot_requests": {"preview:telegram": 1},
    }
    table = cli("links", "clicks", str(campaign))
    assert "messages clicked by their member" in table.output


def test_an_unknown_code_is_an_error_that_says_what_a_code_is(engine: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("links", "show", "Nope123")
    assert result.exit_code == 1
    assert "no short link has code 'Nope123'" in result.output
