"""`tidings report`: credit orders to messages, and a campaign's results as a table, JSON,
CSV or Excel, with its charts as PNG files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from tidings import clock
from tidings.db import session_scope
from tidings.dispatch.service import CampaignNotFound
from tidings.migrate import ready_engine
from tidings.reports import exports, health
from tidings.reports.service import campaign_report, render_charts
from tidings.reports.tables import print_report
from tidings.tracking.credits import attribute_orders

report_app = typer.Typer(
    help="Results: credit orders to messages, and report on campaigns.", no_args_is_help=True
)
JSON_HELP = "Print the result as JSON."


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _session() -> Iterator[Session]:
    """A committed session; an unknown campaign becomes one line and exit code 2."""
    try:
        with session_scope(ready_engine()) as session:
            yield session
    except CampaignNotFound as error:
        _fail(str(error))


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


@report_app.command("attribute")
def attribute(
    since: str = typer.Option(
        None,
        "--since",
        help="Credit the orders placed from this date (YYYY-MM-DD, UTC); default 60 days back.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Credits orders to the messages that earned them: a redeemed coupon, then an order within
    the click window after a person's click, then within the view window after delivery."""
    start = None
    if since is not None:
        try:
            start = datetime.combine(date.fromisoformat(since), time(), tzinfo=UTC)
        except ValueError:
            _fail(f"--since '{since}' is not a date; write it as YYYY-MM-DD, e.g. 2026-11-01")
    with _session() as session:
        result = attribute_orders(db_session=session, since=start)
    if as_json:
        _print_json(result.as_dict())
        return
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in result.by_kind.items()) or "none"
    typer.echo(
        f"{result.orders:,} orders since {result.since:%Y-%m-%d}: {result.credited:,} newly"
        f" credited, {result.upgraded:,} upgraded to a more direct message ({kinds})"
    )


@report_app.command("campaign")
def campaign(
    campaign_id: int = typer.Argument(..., help="The campaign's id."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
    as_csv: bool = typer.Option(
        False, "--csv", help="Write the rows per campaign, variant, store and day as one CSV."
    ),
    as_xlsx: bool = typer.Option(
        False, "--xlsx", help="Write an Excel workbook with one sheet per level."
    ),
    out: Path = typer.Option(
        None, "--out", help="File for --json, --csv or --xlsx (default: report-ID.EXT here)."
    ),
    charts: Path = typer.Option(
        None, "--charts", help="Folder to render the charts into as PNG files."
    ),
) -> None:
    """A campaign's results: funnel per variant, store and day, A/B verdict, lift, health."""
    if as_json + as_csv + as_xlsx > 1:
        _fail("choose one of --json, --csv and --xlsx")
    with _session() as session:
        report = campaign_report(db_session=session, campaign_id=campaign_id)
    if charts is not None:
        report["charts"] = render_charts(report, charts)
    if as_csv or as_xlsx:
        suffix = "csv" if as_csv else "xlsx"
        path = out or Path(f"report-{campaign_id}.{suffix}")
        writer = exports.write_csv if as_csv else exports.write_xlsx
        typer.echo(f"wrote {writer(report, path)}")
    elif as_json:
        text = json.dumps(report, ensure_ascii=False, default=str, indent=2)
        if out is None:
            typer.echo(text)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
            typer.echo(f"wrote {out}")
    else:
        print_report(report)


@report_app.command("health")
def health_command(
    days: int = typer.Option(7, "--days", help="How many days back to look (1 or more)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delivery, opt-out, complaint and reply rates per campaign, provider and day against the
    thresholds, with the breaches stored (and posted) by the worker's health checks."""
    try:
        with _session() as session:
            report = health.health_report(db_session=session, days=days, now=clock.now())
    except health.HealthInputError as error:
        _fail(f"--{error}")
    if as_json:
        _print_json(report)
        return
    print_health(report)


def _share(value: float | None, places: int = 2) -> str:
    return "-" if value is None else f"{value:.{places}%}"


def print_health(report: dict[str, Any], console: Console | None = None) -> None:
    """Prints the health rows as a table, then the findings and the stored breaches."""
    console = console or Console()
    table = Table(title=f"health since {report['since']}", title_justify="left")
    for name in ("scope", "key", "day", "settled", "delivery", "opt-outs", "complaints", "replies"):
        table.add_column(name, justify="left" if name in ("scope", "key", "day") else "right")
    table.add_column("health")
    for row in report["rows"]:
        table.add_row(
            row["scope"],
            row["key"],
            row["day"] or "-",
            f"{row['settled']:,}",
            _share(row["delivery_rate"]),
            _share(row["opt_out_rate"]),
            _share(row["complaint_rate"]),
            _share(row["reply_rate"], 1),
            "ok" if row["healthy"] else "BREACH",
        )
    console.print(table)
    for row in report["rows"]:
        for finding in row["findings"]:
            if finding["kind"] != "too_few":
                label = f"{row['scope']} {row['key']} {row['day'] or ''}".strip()
                console.print(f"{finding['kind']}: {label}: {finding['text']}", markup=False)
    if not report["rows"]:
        console.print(f"nothing was sent in the last {report['days']} days")
    for breach in report["breaches"]:
        posted = "posted" if breach["posted_at"] else "not posted yet"
        console.print(f"stored breach ({posted}): {breach['text']}", markup=False)
