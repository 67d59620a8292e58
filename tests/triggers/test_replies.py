"""Replies set off operator triggers on `reply` or `reply:<intent>`: once per reply, through the
same firing path (consent, caps), never for a stop, a complaint or an unreadable reply."""

from __future__ import annotations

from datetime import UTC

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings.config import get_settings
from tidings.db import session_scope
from tidings.inbound.handling import handle_replies
from tidings.inbound.service import store_replies
from tidings.providers.base import InboundReply

from .conftest import add_member, at, local, trigger_messages

NOW = local(2026, 6, 10, 11).astimezone(UTC)


def _trigger(client: TestClient, event_type: str, name: str = "积分回复礼") -> None:
    body = {
        "name": name,
        "event_type": event_type,
        "template": "{surname|亲爱的会员}，感谢回复“{event_item}”，本周到店积分翻倍。",
        "expiry_minutes": 600,
    }
    answer = client.post("/api/v1/triggers", json=body)
    assert answer.status_code == 201, answer.text


def _replies(engine: Engine, *texts: tuple[int, str, str]) -> list[int]:
    """Stores replies (member, text, provider id) as a provider hands them over."""
    batch = [
        InboundReply("simulator", f"+86139{member:08d}", body, NOW, pmid, "1")
        for member, body, pmid in texts
    ]
    with at(NOW), session_scope(engine) as session:
        return store_replies(db_session=session, replies=batch, now=NOW).ids


def test_a_points_reply_fires_its_trigger_once_however_often_it_arrives(
    engine: Engine, client: TestClient
) -> None:
    for member_id in (1, 2, 3):
        add_member(engine, member_id, consent=member_id != 3)
    _trigger(client, "reply:points")
    ids = _replies(engine, (1, "积分", "mo-1"), (2, "营业时间", "mo-2"), (3, "积分", "mo-3"))
    _replies(engine, (1, "积分", "mo-1"))  # the provider delivers it again
    with at(NOW), session_scope(engine) as session:  # and it is handled again
        handle_replies(db_session=session, reply_ids=ids, now=NOW, settings=get_settings())
    sent = trigger_messages(engine, "积分回复礼")
    assert sent["member_id"].to_list() == [1, 3]
    assert sent["state"].to_list() == ["queued", "skipped"]
    assert sent["skip_reason"][1] == "no_consent"
    assert "感谢回复“积分”，本周到店积分翻倍" in sent["text"][0]


def test_a_stop_a_complaint_or_an_unreadable_reply_fires_nothing(
    engine: Engine, client: TestClient
) -> None:
    for member_id in (1, 2, 3, 4):
        add_member(engine, member_id)
    _trigger(client, "reply", name="回复即有礼")
    _replies(
        engine,
        (1, "退订", "mo-1"),
        (2, "我要投诉，你们服务太差", "mo-2"),
        (3, "qwxz", "mo-3"),
        (4, "查积分", "mo-4"),
    )
    sent = trigger_messages(engine, "回复即有礼")
    assert sent["member_id"].to_list() == [4]


def test_a_reply_trigger_on_an_intent_there_is_none_of_is_refused(
    engine: Engine, client: TestClient
) -> None:
    body = {"name": "坏", "event_type": "reply:lottery", "template": "您好"}
    answer = client.post("/api/v1/triggers", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "no reply is taken for 'lottery'" in answer.json()["detail"]
    with session_scope(engine) as session:
        kept = session.execute(text("SELECT COUNT(*) FROM triggers WHERE name = '坏'")).scalar()
    assert kept == 0
