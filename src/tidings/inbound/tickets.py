"""Tickets: conversations a person must handle, routed to a store's or a team's queue, each
with a first-response deadline counted in opening hours and a history of what was said.

A member who writes again while a ticket of theirs is unsolved adds to that ticket rather
than opening another, so an agent sees the whole conversation in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db import is_sqlite
from tidings.dispatch.sendwindow import DailyWindow
from tidings.inbound.answers import Answer, queue_answers
from tidings.inbound.models import (
    UNSOLVED,
    RoutingRule,
    Ticket,
    TicketEvent,
    TicketPriority,
    TicketStatus,
)
from tidings.members.models import Member

tickets_table: Table = Ticket.__table__  # type: ignore[assignment]
events_table: Table = TicketEvent.__table__  # type: ignore[assignment]
STORE_QUEUE = "store"  # a routing rule's queue meaning "the member's own store"
MAX_OPEN_DAYS = 14  # days searched for the next opening hour before giving up


class TicketNotFound(LookupError):
    """No ticket has the id asked for."""


class TicketError(ValueError):
    """A ticket operation that cannot be done as asked; the message says what to do."""


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """What opening a ticket (or adding to a member's unsolved one) needs."""

    category: str
    phone: str
    provider: str
    subject: str
    opened_at: datetime
    member_id: int | None = None
    store_id: int | None = None
    store_code: str | None = None
    reply_id: int | None = None
    priority: TicketPriority = TicketPriority.NORMAL
    suggestions: list[dict[str, Any]] = field(default_factory=list)


def first_response_due(opened_at: datetime, *, settings: Settings) -> datetime:
    """`opened_at` plus the first-response minutes, counting only opening hours."""
    hours = DailyWindow.parse(settings.ticket_opening_hours)
    zone = ZoneInfo(settings.default_timezone)
    left = timedelta(minutes=settings.ticket_first_response_minutes)
    if hours.start == hours.end:  # open all day
        return opened_at + left
    local = opened_at.astimezone(zone)
    first = datetime.combine(local.date(), hours.start)
    length = (datetime.combine(local.date(), hours.end) - first) % timedelta(days=1)
    # Each day's opening, from the day before (hours may run past midnight) onwards.
    for offset in range(-1, MAX_OPEN_DAYS):
        start = (first + timedelta(days=offset)).replace(tzinfo=zone)
        end = start + length
        if end <= local:
            continue
        cursor = max(local, start)
        if cursor + left <= end:
            return (cursor + left).astimezone(opened_at.tzinfo)
        left -= end - cursor
        local = end
    return opened_at + left


def routes(db_session: Session) -> dict[str, str]:
    """The routing rules as category -> queue."""
    rows = db_session.execute(select(RoutingRule.category, RoutingRule.queue))
    return {category: queue for category, queue in rows}


def set_route(*, db_session: Session, category: str, queue: str) -> None:
    """Sends tickets of `category` to `queue` ('store' or 'team:<name>') from now on."""
    if queue != STORE_QUEUE and not (queue.startswith("team:") and len(queue) > 5):
        raise TicketError(
            f"queue {queue!r} is neither 'store' (the member's store) nor 'team:<name>'"
        )
    rule = db_session.scalar(select(RoutingRule).where(RoutingRule.category == category))
    if rule is None:
        db_session.add(RoutingRule(category=category, queue=queue))
    else:
        rule.queue = queue


def queue_for(draft: TicketDraft, rules: dict[str, str], settings: Settings) -> str:
    """The queue a new ticket goes to: its category's rule, the member's store, or the team."""
    rule = rules.get(draft.category, STORE_QUEUE)
    if rule == STORE_QUEUE:
        return (
            f"store:{draft.store_code}"
            if draft.store_code
            else f"team:{settings.ticket_default_team}"
        )
    return rule


def _unsolved_by_phone(db_session: Session, phones: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    if not phones:
        return found
    rows = db_session.execute(
        select(Ticket.phone, func.max(Ticket.id))
        .where(Ticket.phone.in_(sorted(set(phones))), Ticket.status != TicketStatus.SOLVED)
        .group_by(Ticket.phone)
    )
    found.update({phone: ticket_id for phone, ticket_id in rows})
    return found


def _insert_unless_unsolved(
    db_session: Session, draft: TicketDraft, queue: str, now: datetime, settings: Settings
) -> int | None:
    """Inserts a ticket for `draft`, or returns None when its phone already has an unsolved
    one (opened by a callback handled at the same time, which this one did not see)."""
    dialect = sqlite if is_sqlite(db_session) else postgresql
    statement = (
        dialect.insert(tickets_table)
        .values(
            category=draft.category,
            priority=draft.priority,
            status=TicketStatus.OPEN,
            queue=queue,
            store_id=draft.store_id,
            member_id=draft.member_id,
            phone=draft.phone,
            provider=draft.provider,
            reply_id=draft.reply_id,
            subject=draft.subject,
            suggestions=draft.suggestions or None,
            first_response_due=first_response_due(draft.opened_at, settings=settings),
            breached=False,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["phone"], index_where=UNSOLVED)
        .returning(tickets_table.c.id)
    )
    return db_session.execute(statement).scalar_one_or_none()


def open_tickets(
    *, db_session: Session, drafts: Sequence[TicketDraft], now: datetime, settings: Settings
) -> list[int]:
    """Opens a ticket per draft, or adds the draft to its phone's unsolved ticket.

    Returns the ticket id of each draft, in order.
    """
    unsolved = _unsolved_by_phone(db_session, [draft.phone for draft in drafts])
    rules = routes(db_session) if drafts else {}
    ids: list[int] = []
    events: list[dict[str, Any]] = []
    for draft in drafts:
        ticket_id = unsolved.get(draft.phone)
        if ticket_id is None:
            queue = queue_for(draft, rules, settings)
            ticket_id = _insert_unless_unsolved(db_session, draft, queue, now, settings)
            if ticket_id is not None:
                unsolved[draft.phone] = ticket_id
                ids.append(ticket_id)
                events.append(
                    _event(ticket_id, "opened", "member", draft.subject, now, draft.reply_id)
                )
                continue
            # The unique index waited for the other transaction, so its ticket is visible.
            ticket_id = _unsolved_by_phone(db_session, [draft.phone])[draft.phone]
            unsolved[draft.phone] = ticket_id
        values: dict[str, Any] = {"status": TicketStatus.OPEN, "updated_at": now}
        if draft.priority is TicketPriority.URGENT:
            values["priority"] = TicketPriority.URGENT
        db_session.execute(
            update(tickets_table).where(tickets_table.c.id == ticket_id).values(**values)
        )
        events.append(_event(ticket_id, "reply", "member", draft.subject, now, draft.reply_id))
        ids.append(ticket_id)
    if events:
        db_session.execute(insert(events_table), events)
    return ids


def _event(
    ticket_id: int,
    kind: str,
    actor: str,
    text: str | None,
    now: datetime,
    reply_id: int | None = None,
    message_id: int | None = None,
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "kind": kind,
        "actor": actor,
        "text": text,
        "reply_id": reply_id,
        "message_id": message_id,
        "created_at": now,
    }


def get(*, db_session: Session, ticket_id: int) -> Ticket:
    """Gets a ticket by id, or raises TicketNotFound."""
    ticket = db_session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFound(f"no ticket {ticket_id}; see `tidings tickets list`")
    return ticket


def history(*, db_session: Session, ticket_id: int) -> list[TicketEvent]:
    """A ticket's events, oldest first."""
    return list(
        db_session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        )
    )


def list_tickets(
    *,
    db_session: Session,
    status: TicketStatus | None = None,
    queue: str | None = None,
    breached: bool | None = None,
    limit: int = 100,
) -> list[Ticket]:
    """Tickets, urgent and oldest deadline first, filtered as asked."""
    query = select(Ticket)
    if status is not None:
        query = query.where(Ticket.status == status)
    if queue is not None:
        query = query.where(Ticket.queue == queue)
    if breached is not None:
        query = query.where(Ticket.breached.is_(breached))
    order = (Ticket.priority != TicketPriority.URGENT, Ticket.first_response_due, Ticket.id)
    return list(db_session.scalars(query.order_by(*order).limit(limit)))


def flag_breaches(*, db_session: Session, now: datetime) -> int:
    """Marks unanswered tickets past their first-response deadline; returns how many."""
    late = select(Ticket.id).where(
        Ticket.first_response_at.is_(None),
        Ticket.first_response_due < now,
        Ticket.breached.is_(False),
        Ticket.status != TicketStatus.SOLVED,
    )
    ids = list(db_session.scalars(late))
    if not ids:
        return 0
    db_session.execute(
        update(tickets_table).where(tickets_table.c.id.in_(ids)).values(breached=True)
    )
    db_session.execute(
        insert(events_table),
        [_event(i, "breach", "system", "first-response deadline missed", now) for i in ids],
    )
    return len(ids)


def counts(*, db_session: Session) -> dict[str, int]:
    """Tickets by status, plus how many breached their deadline."""
    rows = db_session.execute(select(Ticket.status, func.count()).group_by(Ticket.status))
    found = {str(status): int(number) for status, number in rows}
    result = {status.value: found.get(status.value, 0) for status in TicketStatus}
    result["breached"] = int(
        db_session.scalar(select(func.count()).where(Ticket.breached.is_(True))) or 0
    )
    return result


def answer(
    *,
    db_session: Session,
    ticket_id: int,
    text: str,
    agent: str,
    now: datetime,
    settings: Settings,
    solve: bool = False,
) -> int:
    """Sends an agent's answer to the member as an SMS, adds it to the history, and returns
    the message id. The ticket becomes pending (waiting for the member) or solved."""
    ticket = get(db_session=db_session, ticket_id=ticket_id)
    if not text.strip():
        raise TicketError("the answer is empty; write what the member should read")
    if ticket.status is TicketStatus.SOLVED:
        raise TicketError(f"ticket {ticket_id} is solved; set its status to open to answer it")
    last_from_member = db_session.scalar(
        select(func.max(TicketEvent.created_at)).where(
            TicketEvent.ticket_id == ticket_id, TicketEvent.actor == "member"
        )
    )
    timezone = None
    if ticket.member_id is not None:
        timezone = db_session.scalar(select(Member.timezone).where(Member.id == ticket.member_id))
    message_ids = queue_answers(
        db_session=db_session,
        answers=[
            Answer(
                phone=ticket.phone,
                text=text.strip(),
                provider=ticket.provider,
                asked_at=last_from_member,
                member_id=ticket.member_id,
                timezone=timezone,
            )
        ],
        now=now,
        settings=settings,
    )
    if ticket.first_response_at is None:
        ticket.first_response_at = now
        if now > ticket.first_response_due:
            ticket.breached = True
    ticket.assignee = ticket.assignee or agent
    ticket.status = TicketStatus.SOLVED if solve else TicketStatus.PENDING
    ticket.updated_at = now
    db_session.add(
        TicketEvent(
            ticket_id=ticket_id,
            kind="answer",
            actor=agent,
            text=text.strip(),
            message_id=message_ids[0],
            created_at=now,
        )
    )
    return message_ids[0]


def change(
    *,
    db_session: Session,
    ticket_id: int,
    actor: str,
    now: datetime,
    status: TicketStatus | None = None,
    assignee: str | None = None,
) -> Ticket:
    """Moves a ticket to `status` and/or gives it to `assignee`, noting it in the history."""
    ticket = get(db_session=db_session, ticket_id=ticket_id)
    if status is not None and status is not ticket.status:
        db_session.add(
            TicketEvent(
                ticket_id=ticket_id,
                kind="status",
                actor=actor,
                text=f"{ticket.status.value} -> {status.value}",
                created_at=now,
            )
        )
        ticket.status = status
    if assignee is not None and assignee != ticket.assignee:
        db_session.add(
            TicketEvent(
                ticket_id=ticket_id, kind="assign", actor=actor, text=assignee, created_at=now
            )
        )
        ticket.assignee = assignee
    ticket.updated_at = now
    return ticket
