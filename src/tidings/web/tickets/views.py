"""Inbox and tickets: the agent's queue, one ticket's conversation, and answering,
assigning and solving it. A store manager sees their store's tickets only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from tidings import clock
from tidings.accounts.models import Role
from tidings.config import get_settings
from tidings.http import DbSession
from tidings.inbound import tickets
from tidings.inbound.models import Ticket, TicketStatus
from tidings.inbound.ticket_pages import ticket_page
from tidings.web.rendering import PAGE_SIZE, render
from tidings.web.security import CsrfChecked, CurrentViewer, NotFound, Viewer

router = APIRouter(include_in_schema=False)
HANDLERS = (Role.AGENT, Role.STORE_MANAGER)


def _visible(db_session: DbSession, viewer: Viewer, ticket_id: int) -> Ticket:
    viewer.require(*HANDLERS)
    try:
        ticket = tickets.get(db_session=db_session, ticket_id=ticket_id)
    except tickets.TicketNotFound as error:
        raise NotFound(str(error)) from error
    if viewer.store_scope is not None and ticket.store_id != viewer.store_scope:
        raise NotFound(f"no ticket {ticket_id} among the tickets you can see")
    return ticket


@router.get("/tickets")
def ticket_list(
    request: Request,
    viewer: CurrentViewer,
    db_session: DbSession,
    status: str = "open",
    page: int = 1,
) -> Response:
    """Lists tickets by status, urgent and oldest deadline first."""
    viewer.require(*HANDLERS)
    chosen = TicketStatus(status) if status in {s.value for s in TicketStatus} else None
    rows, has_more = ticket_page(
        db_session=db_session,
        status=chosen,
        store_id=viewer.store_scope,
        page=page,
        page_size=PAGE_SIZE,
    )
    return render(
        request,
        "tickets/templates/list.html",
        viewer=viewer,
        tickets=rows,
        has_more=has_more,
        page=max(page, 1),
        status=chosen.value if chosen else "all",
        statuses=[s.value for s in TicketStatus],
    )


def _ticket_view(
    request: Request, viewer: Viewer, db_session: DbSession, ticket: Ticket, **extra: Any
) -> Response:
    history = tickets.history(db_session=db_session, ticket_id=ticket.id)
    return render(
        request,
        "tickets/templates/ticket.html",
        viewer=viewer,
        ticket=ticket,
        history=history,
        **extra,
    )


@router.get("/tickets/{ticket_id}")
def ticket_page_view(
    request: Request, ticket_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Shows a ticket's conversation with the forms to answer, assign and solve it."""
    ticket = _visible(db_session, viewer, ticket_id)
    return _ticket_view(request, viewer, db_session, ticket)


@router.post("/tickets/{ticket_id}/answer", dependencies=[CsrfChecked])
def answer(
    request: Request,
    ticket_id: int,
    viewer: CurrentViewer,
    db_session: DbSession,
    text: Annotated[str, Form()] = "",
    solve: Annotated[bool, Form()] = False,
) -> Response:
    """Sends the agent's answer to the member as an SMS."""
    ticket = _visible(db_session, viewer, ticket_id)
    try:
        tickets.answer(
            db_session=db_session,
            ticket_id=ticket_id,
            text=text,
            agent=viewer.name,
            now=clock.now(),
            settings=get_settings(),
            solve=solve,
        )
    except tickets.TicketError as error:
        db_session.rollback()
        ticket = _visible(db_session, viewer, ticket_id)
        return _ticket_view(request, viewer, db_session, ticket, error=str(error), text=text)
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.post("/tickets/{ticket_id}/assign", dependencies=[CsrfChecked])
def assign(
    ticket_id: int,
    viewer: CurrentViewer,
    db_session: DbSession,
    assignee: Annotated[str, Form()] = "",
) -> Response:
    """Gives the ticket to a person (empty: to the one asking)."""
    _visible(db_session, viewer, ticket_id)
    tickets.change(
        db_session=db_session,
        ticket_id=ticket_id,
        actor=viewer.name,
        now=clock.now(),
        assignee=assignee.strip() or viewer.name,
    )
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.post("/tickets/{ticket_id}/status", dependencies=[CsrfChecked])
def set_status(
    ticket_id: int,
    viewer: CurrentViewer,
    db_session: DbSession,
    status: Annotated[TicketStatus, Form()],
) -> Response:
    """Solves or reopens the ticket."""
    _visible(db_session, viewer, ticket_id)
    tickets.change(
        db_session=db_session,
        ticket_id=ticket_id,
        actor=viewer.name,
        now=clock.now(),
        status=status,
    )
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)
