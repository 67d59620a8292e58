"""The inbox: an agent answers a ticket (the answer goes out as an SMS), assigns and solves
it; a store manager sees only their store's tickets."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from tidings import clock
from tidings.accounts.models import Role
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.models import Message
from tidings.inbound.models import Ticket, TicketStatus
from tidings.inbound.service import store_replies
from tidings.providers.base import InboundReply

from .conftest import Console, add_store_members, csrf_of

ASKED_AT = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai


def _ticket_from(engine: Engine, phone: str) -> int:
    with session_scope(engine) as db_session:
        store_replies(
            db_session=db_session,
            replies=[InboundReply("ali", phone, "我要找店长", ASKED_AT, f"mo-{phone}")],
            now=ASKED_AT,
            settings=Settings(),
        )
        return db_session.scalars(select(Ticket.id).where(Ticket.phone == phone)).one()


def test_an_agent_answers_assigns_and_solves(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    ticket_id = _ticket_from(engine, "+8613812345670")
    client = console(Role.AGENT)
    assert f"/tickets/{ticket_id}" in client.get("/tickets").text
    with clock.frozen(ASKED_AT):
        token = csrf_of(client, f"/tickets/{ticket_id}")
        page = client.post(
            f"/tickets/{ticket_id}/answer", data={"csrf_token": token, "text": "店长稍后致电您"}
        ).text
        assert "店长稍后致电您" in page and "等待会员" in page
        client.post(f"/tickets/{ticket_id}/assign", data={"csrf_token": token, "assignee": "lin"})
        page = client.post(
            f"/tickets/{ticket_id}/status", data={"csrf_token": token, "status": "solved"}
        ).text
    assert 'id="assignee">lin<' in page and "已解决" in page
    with session_scope(engine) as db_session:
        ticket = db_session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is TicketStatus.SOLVED
        texts = list(db_session.scalars(select(Message.text).where(Message.phone == ticket.phone)))
    assert any("店长稍后致电您" in text for text in texts)


def test_an_empty_answer_is_refused_and_sends_nothing(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    ticket_id = _ticket_from(engine, "+8613812345670")
    client = console(Role.AGENT)
    token = csrf_of(client, f"/tickets/{ticket_id}")
    response = client.post(f"/tickets/{ticket_id}/answer", data={"csrf_token": token, "text": " "})
    assert response.status_code == 200 and 'role="alert"' in response.text
    with session_scope(engine) as db_session:
        assert db_session.scalars(select(Message.id)).first() is None


def test_a_store_manager_sees_only_their_stores_tickets(console: Console, engine: Engine) -> None:
    add_store_members(engine)
    mine = _ticket_from(engine, "+8613812345670")
    theirs = _ticket_from(engine, "+8613912345670")
    client = console(Role.STORE_MANAGER, "SH001")
    listing = client.get("/tickets").text
    assert f'/tickets/{mine}"' in listing and f'/tickets/{theirs}"' not in listing
    assert client.get(f"/tickets/{theirs}").status_code == 404
