"""`tidings trigger`: list, show, switch on and off, configure and run the triggers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from tidings import clock
from tidings.db import session_scope
from tidings.migrate import ready_engine
from tidings.triggers import scheduler, service
from tidings.triggers.schemas import TriggerCreate

trigger_app = typer.Typer(
    help="Lifecycle and event triggers: list, show, switch on and off, run the date ones.",
    no_args_is_help=True,
)
JSON_HELP = "Print the result as JSON."
REF_HELP = "The trigger's name (birthday, cart_abandoned, ...) or id."


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _session() -> Iterator[Session]:
    """A committed session; errors a user can cause become one line and exit code 2."""
    try:
        with session_scope(ready_engine()) as session:
            yield session
    except (service.TriggerError, service.TriggerNotFound) as error:
        _fail(str(error))


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


@trigger_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Lists every trigger: on or off, what it reacts to, and how often it fired."""
    with _session() as db_session:
        counts = service.firing_counts(db_session=db_session)
        rows = [
            service.describe(t, counts.get(t.id))
            for t in service.list_triggers(db_session=db_session)
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "name", "on", "reacts to", "fired", "summary")
    for row in rows:
        fired = sum(row["firings"].values())
        table.add_row(
            str(row["id"]),
            row["name"],
            "yes" if row["enabled"] else "no",
            row["reacts_to"],
            str(fired),
            row["summary"] or row["condition"] or "",
        )
    Console(width=140).print(table)


@trigger_app.command("show")
def show_command(
    ref: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows a trigger's settings, template, conditions and firings."""
    with _session() as db_session:
        trigger = service.get(db_session=db_session, ref=ref)
        row = service.describe(
            trigger, service.firing_counts(db_session=db_session).get(trigger.id)
        )
    if as_json:
        _print_json(row)
        return
    for name, value in row.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        typer.echo(f"{name}: {'' if shown is None else shown}")


def _switch(ref: str, enabled: bool, as_json: bool) -> None:
    with _session() as db_session:
        trigger = service.set_enabled(db_session=db_session, ref=ref, enabled=enabled)
        row = service.describe(trigger)
    if as_json:
        _print_json(row)
    else:
        typer.echo(f"trigger {row['name']} is {'on' if enabled else 'off'}")


@trigger_app.command("enable")
def enable_command(
    ref: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Switches a trigger on: it fires from its next occasion."""
    _switch(ref, True, as_json)


@trigger_app.command("disable")
def disable_command(
    ref: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Switches a trigger off: it fires nothing new (messages already queued still go)."""
    _switch(ref, False, as_json)


@trigger_app.command("set")
def set_command(
    ref: str = typer.Argument(..., help=REF_HELP),
    settings: list[str] = typer.Argument(
        None, help="Settings as NAME=VALUE (VALUE read as JSON when it can be), e.g. days_before=5."
    ),
    template: str = typer.Option(None, "--template", help="A new template for its message."),
    condition: str = typer.Option(
        None, "--condition", help="A segment rule members must match ('' for none)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Changes a trigger's settings, template or condition."""
    changes: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for item in settings or []:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            _fail(f"'{item}' is not NAME=VALUE, e.g. days_before=5")
        try:
            config[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            config[name.strip()] = value
    if config:
        changes["config"] = config
    if template is not None:
        changes["template"] = template
    if condition is not None:
        changes["condition"] = condition
    with _session() as db_session:
        row = service.describe(service.update(db_session=db_session, ref=ref, changes=changes))
    if as_json:
        _print_json(row)
    else:
        typer.echo(f"trigger {row['name']} changed")


@trigger_app.command("create")
def create_command(
    name: str = typer.Argument(..., help="The trigger's name, unique."),
    template: str = typer.Option(..., "--template", help="Its message; fields as in campaigns."),
    event_type: str = typer.Option(
        None,
        "--event-type",
        help="Fire on events of this kind (POST /api/v1/events:batch), or reply / reply:INTENT.",
    ),
    date_field: str = typer.Option(
        None, "--date-field", help="Fire on the day of this date field (e.g. next_run_out_on)."
    ),
    condition: str = typer.Option(None, "--condition", help="A segment rule members must match."),
    exit_condition: str = typer.Option(
        None, "--exit-condition", help="A segment rule that stops it for the members it matches."
    ),
    delay_minutes: int = typer.Option(
        0, "--delay-minutes", min=0, help="Minutes after the event before the message goes."
    ),
    offset_days: int = typer.Option(
        0, "--offset-days", help="Days after the date field (negative: before) it is due."
    ),
    expiry_minutes: int = typer.Option(
        None, "--expiry-minutes", min=0, help="Minutes after it is due that it stops making sense."
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Create it switched off."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Creates an operator's trigger on an event type or a date field."""
    try:
        spec = TriggerCreate(
            name=name,
            template=template,
            event_type=event_type,
            date_field=date_field,
            condition=condition,
            exit_condition=exit_condition,
            delay_minutes=delay_minutes,
            offset_days=offset_days,
            expiry_minutes=expiry_minutes,
            enabled=not disabled,
        )
    except ValidationError as error:
        _fail("; ".join(str(e["msg"]) for e in error.errors()))
    with _session() as db_session:
        row = service.describe(service.create(db_session=db_session, spec=spec))
    if as_json:
        _print_json(row)
    else:
        typer.echo(f"trigger {row['name']} created (id {row['id']})")


@trigger_app.command("run-once")
def run_once_command(
    as_of: str = typer.Option(
        None, "--as-of", help="Evaluate as if today were this day (YYYY-MM-DD, brand timezone)."
    ),
    only: str = typer.Option(None, "--only", help="Run only this date trigger (name or id)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Runs the date triggers once (birthday, first order, win-back, ...) and queues what is due."""
    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            _fail(f"--as-of '{as_of}' is not a day; write it as YYYY-MM-DD, e.g. 2026-12-02")
    try:
        report = scheduler.run_once(ready_engine(), now=clock.now(), as_of=day, only=only)
    except (service.TriggerError, service.TriggerNotFound) as error:
        _fail(str(error))
    if report is None:
        _fail("another process is running the trigger scheduler now; try again in a minute")
    if as_json:
        _print_json(report)
        return
    for name, counts in report.items():
        skipped = counts["skipped"]
        assert isinstance(skipped, dict)
        reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
        typer.echo(
            f"{name}: {counts['fired']} fired, {counts['queued']} queued"
            + (f", skipped: {reasons}" if reasons else "")
        )
    if not report:
        typer.echo("no date trigger is enabled")
