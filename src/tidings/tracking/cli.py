"""`tidings links show CODE` and `tidings links clicks CAMPAIGN_ID`: where a short link leads
and who opened it, people and robots apart."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tidings.db import session_scope
from tidings.migrate import ready_engine
from tidings.tracking import service

links_app = typer.Typer(
    help="Short links: where one leads, and the clicks on a campaign's links.",
    no_args_is_help=True,
)
JSON_HELP = "Print the result as JSON."


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str, indent=1))


@links_app.command("show")
def show(
    code: str = typer.Argument(..., help="The code: the part of the link after /s/."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows a short link: its target, campaign, member, message and every request for it."""
    try:
        with session_scope(ready_engine()) as session:
            link = service.show(db_session=session, code=code.strip())
    except service.LinkNotFound as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        _print_json(link)
        return
    typer.echo(f"{link['url']} -> {link['target_url']}")
    typer.echo(
        f"campaign {link['campaign_id']}, member {link['member_id']},"
        f" message {link['message_id']}: {link['clicks']} click(s) by people,"
        f" {link['robot_requests']} by robots"
    )
    table = Table("at", "by", "user agent")
    for request in link["requests"]:
        table.add_row(request["at"], request["robot"] or "person", request["user_agent"] or "")
    Console().print(table)


@links_app.command("clicks")
def clicks(
    campaign_id: int = typer.Argument(..., help="The campaign's id."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Counts a campaign's links, the messages people clicked, and robots' requests by why."""
    with session_scope(ready_engine()) as session:
        summary = service.click_summary(db_session=session, campaign_id=campaign_id)
    if as_json:
        _print_json(summary)
        return
    table = Table("", "count", title=f"clicks on campaign {campaign_id}'s links")
    table.add_row("links (planned messages with {link})", f"{summary['links']:,}")
    table.add_row("messages clicked by their member", f"{summary['clicked_messages']:,}")
    table.add_row("clicks by people", f"{summary['clicks']:,}")
    for reason, n in summary["robot_requests"].items():
        table.add_row(f"robot requests: {reason}", f"{n:,}")
    Console().print(table)
