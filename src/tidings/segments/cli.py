"""`tidings segment`: list the fields, count a rule, and keep named segments."""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from tidings.db import session_scope
from tidings.migrate import ready_engine
from tidings.segments import fields, service
from tidings.segments.lexer import RuleError
from tidings.segments.models import Segment
from tidings.segments.rules import parse

segment_app = typer.Typer(help="Audiences written in the segment language.", no_args_is_help=True)

RULE_HELP = "A rule, e.g. 'tier == \"gold\" and days_since_last_order <= 90'."
JSON_HELP = "Print the result as JSON."


def show_rule_error(rule: str, error: RuleError) -> NoReturn:
    """Prints the rule, a caret under the column, and the message; exits with code 2."""
    text = error.text or rule
    lines = [text] if "\n" not in text else [text.replace("\n", " ")]
    if error.position is not None:
        lines.append(" " * _display_width(text[: error.position - 1]) + "^")
    lines.append(f"error: {error}")
    typer.echo("\n".join(lines), err=True)
    raise typer.Exit(2)


def _display_width(text: str) -> int:
    """Columns a terminal gives to `text`: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _fail(error: service.SegmentError) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


@segment_app.command("fields")
def list_fields(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Lists every field a rule can use, with its type and meaning."""
    described = fields.describe()
    if as_json:
        typer.echo(json.dumps(described, ensure_ascii=False, indent=1))
        return
    table = Table("field", "type", "含义", "meaning")
    for row in described:
        table.add_row(row["name"], row["type"], row["zh"], row["en"])
    Console(width=140).print(table)


@segment_app.command("count")
def count(
    rule: str = typer.Argument(..., help=RULE_HELP),
    as_of: str = typer.Option(None, "--as-of", help="Evaluate as of this day (YYYY-MM-DD)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Counts the members a rule matches and shows the first few member ids."""
    today = _day(as_of)
    try:
        result = service.count(engine=ready_engine(), rule=rule, today=today)
    except RuleError as error:
        show_rule_error(rule, error)
    if as_json:
        typer.echo(json.dumps(result))
        return
    sample = ", ".join(str(member_id) for member_id in result["sample"])
    typer.echo(f"{result['count']} members" + (f" (first: {sample})" if sample else ""))


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        typer.echo(f"error: --as-of '{text}' is not a date; write it as 2025-01-31", err=True)
        raise typer.Exit(2) from None


@segment_app.command("save")
def save(
    name: str = typer.Argument(..., help="Name of the segment, e.g. recent-complainers."),
    rule: str = typer.Argument(..., help=RULE_HELP),
    description: str = typer.Option(None, "--description", help="What the segment is for."),
) -> None:
    """Saves a rule under a name (replacing the segment of that name if there is one)."""
    try:
        with session_scope(ready_engine()) as db_session:
            segment = service.save(
                db_session=db_session, name=name, rule=rule, description=description
            )
            text = segment.rule
    except RuleError as error:
        show_rule_error(rule, error)
    except service.SegmentError as error:
        _fail(error)
    typer.echo(f"saved {name}: {text}")


@segment_app.command("list")
def list_segments(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Lists the saved segments with their current sizes."""
    with session_scope(ready_engine()) as db_session:
        rows = [_summary(segment) for segment in service.measure(db_session=db_session)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no segment is saved yet; save one with: tidings segment save NAME RULE")
        return
    table = Table("name", "members", "rule", "description")
    for row in rows:
        size = "broken" if row["size"] is None else f"{row['size']:,}"
        table.add_row(str(row["name"]), size, str(row["rule"]), str(row["description"] or ""))
    Console(width=160).print(table)


@segment_app.command("show")
def show(
    name: str = typer.Argument(..., help="Name of a saved segment."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows a saved segment: its rule, its size and the first few members."""
    try:
        with session_scope(ready_engine()) as db_session:
            segment = service.require(db_session=db_session, name=name)
            row = _summary(segment)
    except service.SegmentError as error:
        _fail(error)
    try:
        result = service.count(engine=ready_engine(), rule=str(row["rule"]))
    except RuleError as error:
        show_rule_error(str(row["rule"]), error)
    row.update(size=result["count"], sample=result["sample"])
    if as_json:
        row["tree"] = _tree(str(row["rule"]))
        typer.echo(json.dumps(row, ensure_ascii=False))
        return
    for key in ("name", "rule", "description", "size", "sample"):
        if row.get(key) is not None:
            typer.echo(f"{key}: {row[key]}")


def _tree(text: str) -> object:
    from tidings.segments.jsonform import to_json

    return to_json(parse(text))


@segment_app.command("delete")
def delete(name: str = typer.Argument(..., help="Name of a saved segment.")) -> None:
    """Deletes a saved segment that no other segment refers to."""
    try:
        with session_scope(ready_engine()) as db_session:
            service.delete(db_session=db_session, name=name)
    except service.SegmentError as error:
        _fail(error)
    typer.echo(f"deleted {name}")


def _summary(segment: Segment) -> dict[str, object]:
    return {
        "name": segment.name,
        "rule": segment.rule,
        "description": segment.description,
        "size": segment.last_count,
    }
