"""What the tickets and stock endpoints take and give."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tidings.inbound.models import Ticket, TicketEvent, TicketPriority, TicketStatus


class TicketEventOut(BaseModel):
    """One entry of a ticket's history."""

    kind: str
    actor: str
    text: str | None
    message_id: int | None
    created_at: datetime


class TicketOut(BaseModel):
    """A ticket as an agent sees it; `history` only when one ticket is asked for."""

    id: int
    category: str
    priority: TicketPriority
    status: TicketStatus
    queue: str
    phone: str
    member_id: int | None
    subject: str
    assignee: str | None
    suggestions: list[dict[str, Any]] | None
    first_response_due: datetime
    first_response_at: datetime | None
    breached: bool
    created_at: datetime
    history: list[TicketEventOut] | None = None

    @classmethod
    def of(cls, ticket: Ticket, events: list[TicketEvent] | None = None) -> TicketOut:
        """The view of `ticket`, with its history when `events` is given."""
        fields = {name: getattr(ticket, name) for name in cls.model_fields if name != "history"}
        history = None
        if events is not None:
            history = [
                TicketEventOut(
                    kind=e.kind,
                    actor=e.actor,
                    text=e.text,
                    message_id=e.message_id,
                    created_at=e.created_at,
                )
                for e in events
            ]
        return cls(**fields, history=history)


class TicketList(BaseModel):
    """Tickets and the counts by status, breaches included."""

    tickets: list[TicketOut]
    counts: dict[str, int]


class TicketAnswer(BaseModel):
    """An agent's answer: sent to the member as an SMS."""

    text: str = Field(..., min_length=1, max_length=500)
    agent: str = Field(..., min_length=1, max_length=100)
    solve: bool = Field(False, description="Mark the ticket solved with this answer.")


class TicketAnswered(BaseModel):
    """The ticket after the answer, and the id of the message that carries it."""

    ticket: TicketOut
    message_id: int


class TicketChange(BaseModel):
    """A move of status and/or a new assignee."""

    status: TicketStatus | None = None
    assignee: str | None = Field(None, min_length=1, max_length=100)
    actor: str = Field("api", max_length=100)


class StockLine(BaseModel):
    """How many of a product a store has now."""

    store_code: str = Field(..., max_length=64)
    sku: str = Field(..., max_length=64)
    quantity: int = Field(..., ge=0)


class StockBatch(BaseModel):
    """Stock counts to write; each replaces the store's count of that product."""

    stock: list[StockLine]
