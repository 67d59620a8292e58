"""REST endpoints of the inbound domain: tickets (list, show, answer, change) and stock."""

from __future__ import annotations

from typing import Any

import polars as pl
from fastapi import APIRouter, Query, Request

from tidings import clock
from tidings.config import Settings, get_settings
from tidings.http import DbSession, RowId, problem, require_scope
from tidings.inbound import tickets
from tidings.inbound.models import TicketStatus
from tidings.inbound.schemas import (
    StockBatch,
    TicketAnswer,
    TicketAnswered,
    TicketChange,
    TicketList,
    TicketOut,
)
from tidings.inbound.stock import upsert_stock
from tidings.members.api import check_batch_size
from tidings.members.schemas import BatchResult, RowError

router = APIRouter(tags=["tickets"])
Problems: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such ticket."},
    409: {"description": "The ticket is not in a state that allows this."},
}


def _settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


@router.get("/tickets", response_model=TicketList, dependencies=[require_scope("tickets:read")])
def list_tickets(
    db_session: DbSession,
    status: TicketStatus | None = None,
    queue: str | None = Query(None, max_length=100),
    breached: bool | None = None,
    limit: int = Query(100, ge=1, le=1000, description="At most this many tickets."),
) -> Any:
    """Tickets, urgent and nearest deadline first; breaches are flagged before listing."""
    tickets.flag_breaches(db_session=db_session, now=clock.now())
    found = tickets.list_tickets(
        db_session=db_session, status=status, queue=queue, breached=breached, limit=limit
    )
    return TicketList(
        tickets=[TicketOut.of(ticket) for ticket in found],
        counts=tickets.counts(db_session=db_session),
    )


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketOut,
    responses=Problems,
    dependencies=[require_scope("tickets:read")],
)
def show_ticket(ticket_id: RowId, db_session: DbSession) -> Any:
    """One ticket with its history."""
    try:
        ticket = tickets.get(db_session=db_session, ticket_id=ticket_id)
    except tickets.TicketNotFound as error:
        return problem(404, "Ticket not found", str(error))
    return TicketOut.of(ticket, tickets.history(db_session=db_session, ticket_id=ticket_id))


@router.post(
    "/tickets/{ticket_id}/answer",
    response_model=TicketAnswered,
    responses=Problems,
    dependencies=[require_scope("tickets:write")],
)
def answer_ticket(
    ticket_id: RowId, body: TicketAnswer, db_session: DbSession, request: Request
) -> Any:
    """Sends the agent's answer to the member as an SMS and adds it to the history."""
    try:
        message_id = tickets.answer(
            db_session=db_session,
            ticket_id=ticket_id,
            text=body.text,
            agent=body.agent,
            now=clock.now(),
            settings=_settings(request),
            solve=body.solve,
        )
    except tickets.TicketNotFound as error:
        return problem(404, "Ticket not found", str(error))
    except tickets.TicketError as error:
        db_session.rollback()
        return problem(409, "Ticket state", str(error))
    db_session.flush()
    ticket = tickets.get(db_session=db_session, ticket_id=ticket_id)
    events = tickets.history(db_session=db_session, ticket_id=ticket_id)
    return TicketAnswered(ticket=TicketOut.of(ticket, events), message_id=message_id)


@router.patch(
    "/tickets/{ticket_id}",
    response_model=TicketOut,
    responses=Problems,
    dependencies=[require_scope("tickets:write")],
)
def change_ticket(ticket_id: RowId, body: TicketChange, db_session: DbSession) -> Any:
    """Moves a ticket to another status and/or assigns it."""
    try:
        ticket = tickets.change(
            db_session=db_session,
            ticket_id=ticket_id,
            actor=body.actor,
            now=clock.now(),
            status=body.status,
            assignee=body.assignee,
        )
    except tickets.TicketNotFound as error:
        return problem(404, "Ticket not found", str(error))
    db_session.flush()
    return TicketOut.of(ticket, tickets.history(db_session=db_session, ticket_id=ticket_id))


@router.post(
    "/stock:batch",
    response_model=BatchResult,
    tags=["stock"],
    dependencies=[require_scope("orders:write")],
)
def stock_batch(body: StockBatch, db_session: DbSession) -> BatchResult:
    """Writes up to 10,000 stock counts; each replaces the store's count of that product."""
    check_batch_size(len(body.stock), "stock lines")
    frame = pl.DataFrame(
        {
            "line": list(range(len(body.stock))),
            "store_code": [line.store_code for line in body.stock],
            "sku": [line.sku for line in body.stock],
            "quantity": [str(line.quantity) for line in body.stock],
        },
        schema={"line": pl.Int64, "store_code": pl.String, "sku": pl.String, "quantity": pl.String},
    )
    written, problems = upsert_stock(db_session, frame)
    errors = [
        RowError(index=int(line), reason=str(reason)) for line, reason in problems.iter_rows()
    ]
    return BatchResult(
        rows=len(body.stock),
        inserted=0,
        updated=written,
        merged_duplicates=len(body.stock) - written - len(errors),
        rejected=len(errors),
        errors=errors,
    )
