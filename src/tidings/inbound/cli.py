"""`tidings tickets list|show|answer|route` and `tidings import stock`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from tidings import clock
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.inbound import stock, tickets
from tidings.inbound.models import TicketStatus
from tidings.inbound.schemas import TicketOut
from tidings.members.cli import JSON_HELP, MAPPING_HELP, REJECTS_HELP, run_import
from tidings.migrate import ready_engine

tickets_app = typer.Typer(
    help="Tickets: replies a person must answer, by queue and deadline.", no_args_is_help=True
)
ID_HELP = "The ticket's id."
T = TypeVar("T")


@contextmanager
def _session() -> Iterator[Session]:
    with session_scope(ready_engine()) as session:
        yield session


def _run(action: Callable[[Session], T]) -> T:
    try:
        with _session() as session:
            return action(session)
    except (tickets.TicketNotFound, tickets.TicketError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _view(session: Session, ticket_id: int) -> dict[str, Any]:
    ticket = tickets.get(db_session=session, ticket_id=ticket_id)
    events = tickets.history(db_session=session, ticket_id=ticket_id)
    return TicketOut.of(ticket, events).model_dump(mode="json")


@tickets_app.command("list")
def list_command(
    status: TicketStatus = typer.Option(None, "--status", help="Only open, pending or solved."),
    queue: str = typer.Option(None, "--queue", help="Only this queue, e.g. store:S01."),
    breached: bool = typer.Option(False, "--breached", help="Only tickets past their deadline."),
    limit: int = typer.Option(100, "--limit", help="Most tickets shown."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Lists tickets, urgent and nearest deadline first, with counts by status and breaches."""

    def action(session: Session) -> dict[str, Any]:
        tickets.flag_breaches(db_session=session, now=clock.now())
        found = tickets.list_tickets(
            db_session=session,
            status=status,
            queue=queue,
            breached=True if breached else None,
            limit=limit,
        )
        return {
            "tickets": [TicketOut.of(t).model_dump(mode="json") for t in found],
            "counts": tickets.counts(db_session=session),
        }

    result = _run(action)
    if as_json:
        _print_json(result)
        return
    table = Table("id", "category", "priority", "status", "queue", "due", "says")
    for t in result["tickets"]:
        due = t["first_response_due"][:16] + (" BREACHED" if t["breached"] else "")
        table.add_row(
            str(t["id"]), t["category"], t["priority"], t["status"], t["queue"], due,
            t["subject"][:40],
        )  # fmt: skip
    Console().print(table)
    counts = result["counts"]
    typer.echo(", ".join(f"{name} {number}" for name, number in counts.items()))


@tickets_app.command("show")
def show_command(
    ticket_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows a ticket, its suggested answers and its history."""
    view = _run(lambda s: _view(s, ticket_id))
    if as_json:
        _print_json(view)
        return
    typer.echo(
        f"ticket {view['id']} · {view['category']} · {view['priority']} · {view['status']}"
        f" · {view['queue']} · due {view['first_response_due'][:16]}"
        + (" (breached)" if view["breached"] else "")
    )
    typer.echo(f"member {view['member_id'] or '-'} · {view['phone']}")
    for suggestion in view["suggestions"] or []:
        typer.echo(f"  suggested ({suggestion['intent']}): {suggestion['text'] or '-'}")
    for event in view["history"]:
        typer.echo(
            f"  {event['created_at'][:16]} {event['actor']} {event['kind']}: {event['text']}"
        )


@tickets_app.command("answer")
def answer_command(
    ticket_id: int = typer.Argument(..., help=ID_HELP),
    text: str = typer.Argument(..., help="The answer, sent to the member as an SMS."),
    agent: str = typer.Option(..., "--agent", help="Who answers (shown in the history)."),
    solve: bool = typer.Option(False, "--solve", help="Mark the ticket solved with this answer."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Sends an answer to the member and adds it to the ticket's history."""

    def action(session: Session) -> dict[str, Any]:
        message_id = tickets.answer(
            db_session=session,
            ticket_id=ticket_id,
            text=text,
            agent=agent,
            now=clock.now(),
            settings=get_settings(),
            solve=solve,
        )
        session.flush()
        return {"ticket": _view(session, ticket_id), "message_id": message_id}

    result = _run(action)
    if as_json:
        _print_json(result)
        return
    typer.echo(
        f"ticket {ticket_id} is {result['ticket']['status']}; answer queued as message"
        f" {result['message_id']}"
    )


@tickets_app.command("route")
def route_command(
    category: str = typer.Argument(..., help="A ticket category, e.g. complaint or delivery."),
    queue: str = typer.Argument(..., help="'store' (the member's store) or 'team:<name>'."),
) -> None:
    """Sends new tickets of a category to a queue."""
    _run(lambda s: tickets.set_route(db_session=s, category=category, queue=queue))
    typer.echo(f"new {category} tickets go to {queue}")


def import_stock(
    file: Path = typer.Argument(..., help="CSV of stock: store_code, sku, quantity."),
    mapping: Path = typer.Option(None, "--mapping", help=MAPPING_HELP),
    rejects: Path = typer.Option(None, "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Imports store stock from a CSV file; each row replaces that store's count of the sku.

    Fields: store_code, sku, quantity (门店, 商品编码, 库存). Stores and products must be
    imported first; rows naming unknown ones are rejected with the reason.
    """
    run_import(
        stock.import_stock, as_json=as_json, path=file, mapping=mapping, rejects_path=rejects
    )
