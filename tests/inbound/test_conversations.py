"""Replies end to end through Aliyun's SmsUp push: what a member who writes back gets, and
what an agent finds, including the odd things people send."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.app import create_app
from tidings.campaigns.sources import phone_hash
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState
from tidings.inbound import tickets
from tidings.inbound.stock import upsert_stock
from tidings.loyalty.models import LotKind, PointsLot
from tidings.members.models import Member, Store
from tidings.orders.models import Product

TOKEN = "hook-token"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "ali": {
        "type": "aliyun",
        "access_key_id": "LTAI",
        "access_key_secret": "s",
        "sign_name": "好邻居",
        "callback_token": TOKEN,
    }
}
# Monday 23 November 2026, 14:00 in Shanghai: opening hours, no quiet hours.
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
PHONE = "+8613800000001"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SETTINGS = Settings(provider_accounts=ACCOUNTS, brand_name="好邻居")


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine)
    app.state.settings = SETTINGS
    with TestClient(app) as test_client, clock.frozen(NOW):
        yield test_client


@pytest.fixture
def member(engine: Engine) -> int:
    with session_scope(engine) as session:
        home = Store(code="S01", name="南山店", latitude=22.53, longitude=113.93)
        far = Store(code="S02", name="福田店", latitude=22.54, longitude=114.05)
        farther = Store(code="S03", name="罗湖店", latitude=22.55, longitude=114.13)
        session.add_all([home, far, farther])
        session.flush()
        person = Member(phone=PHONE, name="陈晓燕", points=12345, store_id=home.id)
        session.add(person)
        session.flush()
        return person.id


_sequence = iter(range(1, 1_000_000))


def push(client: TestClient, body: str, *, at: datetime = NOW, phone: str = "13800000001") -> None:
    item = {
        "phone_number": phone,
        "content": body,
        "send_time": at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
        "dest_code": "1234",
        "sequence_id": str(next(_sequence)),
    }
    answer = client.post(f"/hooks/aliyun/ali?token={TOKEN}", json=[item])
    assert answer.status_code == 200, answer.text


def answers(engine: Engine) -> list[str]:
    """Texts queued for the member other than campaign messages, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT text FROM messages WHERE campaign_id IS NULL AND dedupe_key <> 'sent'"
                " ORDER BY id"
            )
        )
        return [row[0] for row in rows]


def suppressed(engine: Engine, reason: str) -> bool:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM suppressions WHERE phone_hash = :h AND reason = :r"),
            {"h": phone_hash(PHONE), "r": reason},
        )
        return found.first() is not None


def consent_kinds(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind FROM consent_events ORDER BY id"))
        return [row[0] for row in rows]


def open_tickets(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT category, priority, queue FROM tickets WHERE status <> 'solved' ORDER BY id"
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def sent_before(engine: Engine, member_id: int, *, offer_type: str, hours: float = 1) -> None:
    """A message of `offer_type` the member received `hours` ago."""
    with session_scope(engine) as session:
        session.add(
            Message(
                dedupe_key="sent",
                member_id=member_id,
                phone=PHONE,
                text="【好邻居】...",
                offer_type=offer_type,
                state=MessageState.DELIVERED,
                provider="ali",
                submitted_at=NOW - timedelta(hours=hours),
            )
        )


@pytest.mark.parametrize(
    "body", ["TD", "ＴＤ", "请退订，谢谢！", "退订🙏", "我要退订 别再发了", "Stop!", "td "]
)
def test_a_stop_in_any_form_suppresses_at_once_and_is_confirmed_once(
    client: TestClient, engine: Engine, member: int, body: str
) -> None:
    push(client, body)
    push(client, body)  # people repeat themselves when no answer comes fast enough
    assert suppressed(engine, "opted_out")
    assert consent_kinds(engine) == ["opt_out"]
    assert len(answers(engine)) == 1 and "退订" in answers(engine)[0]
    assert answers(engine)[0].startswith("【好邻居】")


@pytest.mark.parametrize(
    "body", ["不要退订", "我不想退订，还想收到优惠", "", "😀😀", "退订单怎么弄"]
)
def test_what_only_looks_like_a_stop_does_not_opt_out(
    client: TestClient, engine: Engine, member: int, body: str
) -> None:
    push(client, body)
    assert not suppressed(engine, "opted_out")
    assert consent_kinds(engine) == []


def test_start_subscribes_again_with_a_new_consent_event(
    client: TestClient, engine: Engine, member: int
) -> None:
    push(client, "退订")
    push(client, "订阅")
    assert not suppressed(engine, "opted_out")
    assert consent_kinds(engine) == ["opt_out", "opt_in"]
    assert len(answers(engine)) == 2


def test_points_are_answered_from_the_members_balance(
    client: TestClient, engine: Engine, member: int
) -> None:
    push(client, "积分")
    push(client, "ＪＦ")
    assert answers(engine) == ["【好邻居】陈晓燕，您当前积分12,345分。"] * 2


def test_points_answer_names_the_points_expiring_soon_and_their_date(
    client: TestClient, engine: Engine, member: int
) -> None:
    # 345 points expire in 10 days (Shanghai date 2026-12-03), 12,000 in a year: only
    # the first are within the 30-day window.
    soon, later = NOW + timedelta(days=10), NOW + timedelta(days=365)
    with session_scope(engine) as session:
        for points, expires in ((345, soon), (12_000, later)):
            lot = PointsLot(
                member_id=member,
                kind=LotKind.ACCRUAL,
                points=points,
                remaining=points,
                occurred_at=NOW - timedelta(days=300),
                expires_at=expires,
            )
            session.add(lot)
    push(client, "积分")
    assert answers(engine) == [
        "【好邻居】陈晓燕，您当前积分12,345分，其中345分将于2026-12-03到期，请及时使用。"
    ]


def test_stock_names_the_members_store_or_the_nearest_ones(
    client: TestClient, engine: Engine, member: int
) -> None:
    with session_scope(engine) as session:
        session.add_all(
            [Product(sku="M250", name="蒙牛纯牛奶250ml"), Product(sku="E10", name="土鸡蛋10枚")]
        )
    with session_scope(engine) as session:
        upsert_stock(
            session,
            pl.DataFrame(
                {
                    "line": [1, 2, 3, 4],
                    "store_code": ["S01", "S02", "S03", "S01"],
                    "sku": ["M250", "M250", "M250", "E10"],
                    "quantity": ["0", "5", "9", "12"],
                }
            ),
        )
    push(client, "库存 蒙牛纯奶")
    push(client, "鸡蛋还有货吗？")
    first, second = answers(engine)
    assert "南山店暂时缺货" in first and "公里)5件" in first
    assert first.index("福田店") < first.index("罗湖店")  # nearest first
    assert second == "【好邻居】土鸡蛋10枚：您的门店南山店现有12件。"


def test_one_after_a_delivery_offer_opens_a_delivery_ticket_for_the_store(
    client: TestClient, engine: Engine, member: int
) -> None:
    sent_before(engine, member, offer_type="delivery")
    push(client, "１")  # full-width digit
    assert open_tickets(engine) == [("delivery", "normal", "store:S01")]
    assert "南山店" in answers(engine)[0]


def test_a_booking_is_recorded_and_confirmed(
    client: TestClient, engine: Engine, member: int
) -> None:
    push(client, "预约明天下午3点")
    with engine.connect() as connection:
        booked = connection.execute(text("SELECT booked_for FROM bookings")).scalar_one()
    assert str(booked).startswith("2026-11-24 07:00")  # 15:00 in Shanghai
    assert answers(engine) == ["【好邻居】已为您预约南山店11月24日15:00，届时恭候光临。"]


def test_a_survey_answer_within_48_hours_belongs_to_the_campaign(
    client: TestClient, engine: Engine, member: int
) -> None:
    sent_before(engine, member, offer_type="survey", hours=30)
    push(client, "５")
    push(client, "一般")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT score, answer FROM survey_responses ORDER BY id"))
        assert [tuple(row) for row in rows] == [(5, "5"), (3, "一般")]


def test_a_complaint_is_never_auto_answered(
    client: TestClient, engine: Engine, member: int
) -> None:
    push(client, "天天发广告，再发我就去12315投诉你们！！😡")
    assert answers(engine) == []
    assert open_tickets(engine) == [("complaint", "urgent", "store:S01")]
    assert suppressed(engine, "complained")


def test_an_unclear_or_very_long_reply_opens_one_ticket_with_suggestions(
    client: TestClient, engine: Engine, member: int
) -> None:
    push(client, "营业事件是几点")
    push(client, "我想说" + "很长的话" * 250)  # 1,003 characters
    assert open_tickets(engine) == [("hours", "normal", "store:S01")]
    with session_scope(engine) as session:
        ticket = tickets.list_tickets(db_session=session)[0]
        assert ticket.suggestions and ticket.suggestions[0]["intent"] == "hours"
        assert [
            event.kind for event in tickets.history(db_session=session, ticket_id=ticket.id)
        ] == [
            "opened",
            "reply",
        ]


def test_a_late_answer_waits_for_the_quiet_hours_to_end(
    client: TestClient, engine: Engine, member: int
) -> None:
    night = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    with clock.frozen(night):
        push(client, "转人工", at=night)
        with session_scope(engine) as session:
            ticket = tickets.list_tickets(db_session=session)[0]
        later = night + timedelta(hours=1)
        with session_scope(engine) as session:
            tickets.answer(
                db_session=session,
                ticket_id=ticket.id,
                text="您好，明早门店联系您",
                agent="agent-1",
                now=later,
                settings=SETTINGS,
            )
        push(client, "积分", at=night)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind, send_at FROM messages ORDER BY id")).all()
    (agent_kind, agent_at), (points_kind, points_at) = rows
    assert agent_kind == "transactional" and str(agent_at).startswith("2026-11-24 00:00")
    assert points_kind == "reply" and str(points_at).startswith("2026-11-23 15:30")


def test_a_ticket_unanswered_past_its_deadline_is_flagged_and_counted(
    client: TestClient, engine: Engine, member: int
) -> None:
    push(client, "转人工")
    with session_scope(engine) as session:
        assert tickets.flag_breaches(db_session=session, now=NOW + timedelta(minutes=4)) == 0
        assert tickets.flag_breaches(db_session=session, now=NOW + timedelta(minutes=6)) == 1
        assert tickets.counts(db_session=session)["breached"] == 1
