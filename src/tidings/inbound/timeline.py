"""A member's timeline: orders, messages sent, replies, tickets and clicks in one list, newest
first, so whoever looks up a member sees the whole conversation (and what came of it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.dispatch.models import Message
from tidings.inbound.models import Reply, Ticket
from tidings.orders.models import Order
from tidings.tracking.service import member_clicks

DEFAULT_LIMIT = 50  # entries, enough for a screen


def _entry(at: datetime, kind: str, summary: str, **details: Any) -> dict[str, Any]:
    return {"at": at.isoformat(), "kind": kind, "summary": summary, **details}


def _orders(db_session: Session, member_id: int, limit: int) -> list[dict[str, Any]]:
    rows = db_session.scalars(
        select(Order)
        .where(Order.member_id == member_id)
        .order_by(Order.ordered_at.desc(), Order.id.desc())
        .limit(limit)
    )
    return [
        _entry(
            order.ordered_at,
            "order",
            f"order {order.external_id}: ¥{order.amount_cents / 100:,.2f}",
            id=order.id,
            amount_cents=order.amount_cents,
        )
        for order in rows
    ]


def _messages(db_session: Session, member_id: int, limit: int) -> list[dict[str, Any]]:
    sent_at = func.coalesce(Message.submitted_at, Message.send_at)
    rows = db_session.execute(
        select(Message, sent_at)
        .where(Message.member_id == member_id)
        .order_by(sent_at.desc(), Message.id.desc())
        .limit(limit)
    )
    entries = []
    for message, at in rows:
        state = str(message.state)
        reason = message.error_code or message.skip_reason
        entries.append(
            _entry(
                at,
                "message",
                f"{message.kind} {state}{f' ({reason})' if reason else ''}: {message.text}",
                id=message.id,
                campaign_id=message.campaign_id,
                message_kind=str(message.kind),
                state=state,
                reason=reason,
            )
        )
    return entries


def _replies(db_session: Session, member_id: int, limit: int) -> list[dict[str, Any]]:
    rows = db_session.scalars(
        select(Reply)
        .where(Reply.member_id == member_id)
        .order_by(Reply.received_at.desc(), Reply.id.desc())
        .limit(limit)
    )
    return [
        _entry(
            reply.received_at,
            "reply",
            f"replied {reply.text!r}, taken as {reply.intent or 'not yet handled'}",
            id=reply.id,
            text=reply.text,
            intent=reply.intent,
            confidence=reply.confidence,
        )
        for reply in rows
    ]


def _tickets(db_session: Session, member_id: int, limit: int) -> list[dict[str, Any]]:
    rows = db_session.scalars(
        select(Ticket)
        .where(Ticket.member_id == member_id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    return [
        _entry(
            ticket.created_at,
            "ticket",
            f"ticket {ticket.id} ({ticket.category}, {ticket.status}) in {ticket.queue}"
            + (", deadline missed" if ticket.breached else ""),
            id=ticket.id,
            category=ticket.category,
            status=str(ticket.status),
            breached=ticket.breached,
        )
        for ticket in rows
    ]


def _clicks(db_session: Session, member_id: int, limit: int) -> list[dict[str, Any]]:
    return [
        _entry(
            click.pop("at"),
            "click",
            f"opened the link of campaign {click['campaign_id']}"
            if click["robot"] is None
            else f"link fetched by a robot ({click['robot']}), not the member",
            **click,
        )
        for click in member_clicks(db_session=db_session, member_id=member_id, limit=limit)
    ]


# Within one moment a member's reply comes before what it caused: the automatic answer
# (queued at the same instant) and the ticket it opened.
_KIND_ORDER = {"order": 0, "reply": 1, "message": 2, "ticket": 3, "click": 4}


def member_timeline(
    *, db_session: Session, member_id: int, limit: int = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """Gets a member's orders, messages, replies, tickets and clicks, newest first, at most
    `limit`."""
    entries = [
        *_orders(db_session, member_id, limit),
        *_messages(db_session, member_id, limit),
        *_replies(db_session, member_id, limit),
        *_tickets(db_session, member_id, limit),
        *_clicks(db_session, member_id, limit),
    ]
    entries.sort(
        key=lambda entry: (datetime.fromisoformat(entry["at"]), _KIND_ORDER[entry["kind"]]),
        reverse=True,
    )
    return entries[:limit]
