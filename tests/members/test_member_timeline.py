"""`tidings member timeline` and its API: what someone looking up a member sees of the
orders, messages, replies and tickets, newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings import clock
from tidings.app import create_app
from tidings.campaigns.models import Campaign
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState
from tidings.inbound.service import store_replies
from tidings.members.models import Member
from tidings.orders.models import Order
from tidings.providers.base import InboundReply

# Monday 23 November 2026, 14:00 in Shanghai: opening hours, no quiet hours.
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
PHONE = "+8613800000001"


def a_member_who_ordered_got_a_campaign_and_replied(engine: Engine, reply: str) -> int:
    with session_scope(engine) as session:
        member = Member(phone=PHONE, code="M001", name="陈晓燕")
        campaign = Campaign(name="双十一回访")
        session.add_all([member, campaign])
        session.flush()
        session.add(
            Order(
                external_id="POS-1",
                member_id=member.id,
                ordered_at=NOW - timedelta(days=3),
                amount_cents=12_880,
            )
        )
        session.add(
            Message(
                dedupe_key="campaign-1",
                campaign_id=campaign.id,
                member_id=member.id,
                phone=PHONE,
                text="【好邻居】会员日全场8折",
                state=MessageState.DELIVERED,
                submitted_at=NOW - timedelta(days=1),
            )
        )
        member_id = member.id
    with session_scope(engine) as session, clock.frozen(NOW):
        store_replies(
            db_session=session,
            replies=[InboundReply("simulator", PHONE, reply, NOW, provider_message_id="mo-1")],
            now=NOW,
            settings=Settings(brand_name="好邻居"),
        )
    return member_id


def test_a_member_sees_the_order_the_campaign_message_and_the_stop_newest_first(
    cli: Any,
) -> None:
    a_member_who_ordered_got_a_campaign_and_replied(cli.engine, "TD")
    result = cli("member", "timeline", "13800000001", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    kinds = [entry["kind"] for entry in entries]
    # The opt-out confirmation, the reply itself, the campaign message, the order.
    assert kinds == ["message", "reply", "message", "order"]
    confirmation, stop, campaign, order = entries
    assert "退订" in confirmation["summary"] and confirmation["state"] == "queued"
    assert stop["text"] == "TD" and stop["intent"] == "opt_out"
    assert campaign["campaign_id"] is not None and campaign["state"] == "delivered"
    assert "¥128.80" in order["summary"]

    shown = cli("member", "timeline", "M001", "--limit", "2")
    lines = shown.output.splitlines()
    assert len(lines) == 2 and "taken as opt_out" in lines[1]


def test_an_unclear_reply_shows_the_ticket_it_opened(cli: Any) -> None:
    a_member_who_ordered_got_a_campaign_and_replied(cli.engine, "你们店几点关门？我想找店长聊聊")
    entries = json.loads(cli("member", "timeline", PHONE, "--json").output)
    assert entries[0]["kind"] == "ticket" and entries[0]["status"] == "open"


def test_an_unknown_member_is_named_in_the_error(cli: Any) -> None:
    result = cli("member", "timeline", "13900000000")
    assert result.exit_code == 1
    assert "13900000000" in result.output


def test_the_api_gives_the_same_timeline(engine: Engine, cli: Any) -> None:
    member_id = a_member_who_ordered_got_a_campaign_and_replied(engine, "TD")
    key = json.loads(cli("apikey", "create", "crm", "--json").output)["key"]
    with TestClient(create_app(engine)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        answer = client.get(f"/api/v1/members/{member_id}/timeline", headers=headers)
        missing = client.get("/api/v1/members/999999/timeline", headers=headers)
    assert answer.status_code == 200, answer.text
    assert [entry["kind"] for entry in answer.json()] == ["message", "reply", "message", "order"]
    assert missing.status_code == 404
