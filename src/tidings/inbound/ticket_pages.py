"""Tickets a page at a time, for the console: filtered by status and, for a store manager,
by store, urgent and oldest deadline first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.inbound.models import Ticket, TicketPriority, TicketStatus


def ticket_page(
    *,
    db_session: Session,
    status: TicketStatus | None,
    store_id: int | None,
    page: int,
    page_size: int,
) -> tuple[list[Ticket], bool]:
    """One page of tickets and whether another follows."""
    query = select(Ticket)
    if status is not None:
        query = query.where(Ticket.status == status)
    if store_id is not None:
        query = query.where(Ticket.store_id == store_id)
    order = (Ticket.priority != TicketPriority.URGENT, Ticket.first_response_due, Ticket.id)
    page = max(page, 1)
    rows = list(
        db_session.scalars(
            query.order_by(*order).offset((page - 1) * page_size).limit(page_size + 1)
        )
    )
    return rows[:page_size], len(rows) > page_size
