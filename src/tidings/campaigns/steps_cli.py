"""`tidings campaign steps` and `runs`: a campaign's follow-up and countdown steps (when each
goes, to whom, what its plan made) and a recurring campaign's runs (registered on the
`tidings campaign` group)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from tidings.campaigns import followups, recurring, service
from tidings.campaigns.cli import ID_HELP, JSON_HELP, _print_json, _run, campaign_app


@campaign_app.command("steps")
def steps(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Lists the campaign's later steps and what each one's plan made."""

    def listed(session: Session) -> list[dict[str, Any]]:
        service.get(db_session=session, campaign_id=campaign_id)  # says when there is none
        return followups.list_steps(db_session=session, campaign_id=campaign_id)

    rows = _run(listed)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(f"campaign {campaign_id} has no later steps")
        return
    table = Table("step", "when", "to whom", "planned", "skipped", "template")
    for row in rows:
        plan = row["plan"] or {}
        skipped = sum((plan.get("skipped") or {}).values()) if plan else 0
        table.add_row(
            str(row["number"]),
            row["when"],
            row["audience"],
            "not yet" if row["planned_at"] is None else str(plan.get("planned", 0)),
            str(skipped),
            row["template"],
        )
    Console().print(table)


@campaign_app.command("runs")
def runs(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Lists a recurring campaign's runs, one per occurrence, newest first."""
    rows = _run(lambda s: recurring.runs(db_session=s, campaign_id=campaign_id))
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(f"campaign {campaign_id} has made no runs")
        return
    table = Table("id", "name", "occurrence", "status", "messages", "steps planned")
    for row in rows:
        planned = sum(step["planned_at"] is not None for step in row["steps"])
        table.add_row(
            str(row["id"]),
            row["name"],
            str(row["occurrence_at"]),
            row["status"],
            f"{row['messages']:,}",
            f"{planned}/{len(row['steps'])}" if row["steps"] else "-",
        )
    Console().print(table)
