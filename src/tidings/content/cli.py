"""Command groups of the content domain."""

from __future__ import annotations

import json
from enum import StrEnum

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidings.config import get_settings
from tidings.content.length import measure_text, scheme_named
from tidings.content.lint import Finding, Severity, lint_rules, lint_text
from tidings.content.render import render_one
from tidings.content.template import Literal, MessageKind, Template, frame_template
from tidings.content.words import WordListError

message_app = typer.Typer(
    help="Check what a message says: encoding, length, cost, findings.", no_args_is_help=True
)
STYLES = {Severity.ERROR: "bold white on red", Severity.WARNING: "black on yellow"}


class SchemeChoice(StrEnum):
    """Counting schemes offered on the command line."""

    GSM = "gsm"
    MAINLAND = "mainland"


def framed_text(text: str, *, kind: MessageKind, brand_name: str) -> str:
    """Returns `text` as it would be sent: signature first, opt-out last for marketing."""
    source = text.replace("{", "{{").replace("}", "}}")
    template = Template(source=source, pieces=(Literal(text=text, position=0),) if text else ())
    framed = frame_template(template, kind=kind, brand_name=brand_name)
    rendered = render_one(framed, {}).text
    return rendered if rendered is not None else text


def _marked(text: str, findings: list[Finding]) -> Text:
    shown = Text(text)
    for finding in findings:
        if finding.end > finding.start:
            shown.stylize(STYLES[finding.severity], finding.start, finding.end)
    return shown


def _print_readable(text: str, result: dict[str, object], findings: list[Finding]) -> None:
    console = Console()
    console.print(_marked(text, findings))
    table = Table(show_header=False, box=None)
    for key in ("encoding", "units", "segments", "cost_cents"):
        table.add_row(key.replace("_", " "), str(result[key]))
    console.print(table)
    if not findings:
        console.print("[green]no findings[/green]")
    for finding in findings:
        colour = "red" if finding.severity is Severity.ERROR else "yellow"
        where = f"{finding.start}-{finding.end}"
        line = f" {finding.code} at {where}: {finding.message}"
        console.print(Text.assemble((str(finding.severity), colour), line), highlight=False)


@message_app.command("check")
def check(
    text: str = typer.Argument(..., help="The message text."),
    raw: bool = typer.Option(False, "--raw", help="Check exactly this text; add no framing."),
    signature: str = typer.Option(
        None, "--signature", help="Brand name for the signature 【NAME】 (default from settings)."
    ),
    transactional: bool = typer.Option(
        False, "--transactional", help="A transactional message: signature, no opt-out text."
    ),
    scheme: SchemeChoice = typer.Option(
        SchemeChoice.GSM, "--scheme", help="gsm: the SMS standard; mainland: providers' count."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Prints encoding, length units, segments, cost and every finding; exits 1 on an error."""
    kind = MessageKind.TRANSACTIONAL if transactional else MessageKind.MARKETING
    brand = signature or get_settings().brand_name
    counting = scheme_named(scheme.value)
    try:
        rules = lint_rules(kind=kind, brand_name=brand, scheme=counting)
    except WordListError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    sent = text if raw else framed_text(text, kind=kind, brand_name=brand)
    measured = measure_text(sent, scheme=counting)
    findings = lint_text(sent, rules=rules)
    result: dict[str, object] = {
        "encoding": str(measured.encoding),
        "units": measured.units,
        "segments": measured.segments,
        "cost_cents": measured.cost_cents,
        "findings": [finding.as_dict() for finding in findings],
    }
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print_readable(sent, result, findings)
    if any(finding.severity is Severity.ERROR for finding in findings):
        raise typer.Exit(1)
