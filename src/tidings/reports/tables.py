"""Prints a campaign report for a person: the funnel of the whole campaign beside each
variant's, then the rows per store and per day, the A/B and lift verdicts, the health of the
send and the paths of its charts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from tidings.reports.results import FUNNEL_KEYS

LEVEL_COLUMNS = {"by_store": "store_code", "by_day": "day"}
LEVEL_HEADERS = {"by_store": "store", "by_day": "day"}
# The columns of the per-store and per-day tables; the funnel table shows every figure.
ROW_FIGURES = (
    "planned",
    "sent",
    "delivered",
    "clicked",
    "converted",
    "revenue_cents",
    "cost_cents",
)
FIGURE_NAMES = {
    "revenue_cents": "revenue",
    "cost_cents": "cost",
    "revenue_per_message_cents": "revenue per message",
    "cost_per_conversion_cents": "cost per conversion",
}


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("_cents"):
        return f"¥{value / 100:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _title(name: str) -> str:
    return FIGURE_NAMES.get(name, name.replace("_", " "))


def funnel_table(report: dict[str, Any]) -> Table:
    """Every funnel figure (rows) for the whole campaign and for each variant (columns)."""
    variants = report["by_variant"]
    table = Table(title="funnel", title_justify="left")
    table.add_column("")
    table.add_column("campaign", justify="right")
    for row in variants:
        table.add_column(f"variant {row['variant'] or '-'}", justify="right")
    for name in FUNNEL_KEYS:
        cells = [_cell(name, report["funnel"][name])]
        cells += [_cell(name, row[name]) for row in variants]
        table.add_row(_title(name), *cells)
    return table


def level_table(report: dict[str, Any], key: str) -> Table:
    """The main figures per store (`by_store`) or per day (`by_day`)."""
    column = LEVEL_COLUMNS[key]
    table = Table(title=key.replace("_", " "), title_justify="left")
    table.add_column(LEVEL_HEADERS[key], no_wrap=True)
    for name in ROW_FIGURES:
        table.add_column(_title(name), justify="right", no_wrap=True)
    for row in report[key]:
        label = "-" if row[column] is None else str(row[column])
        table.add_row(label, *(_cell(name, row[name]) for name in ROW_FIGURES))
    return table


def print_report(
    report: dict[str, Any],
    console: Console | None = None,
    *,
    levels: tuple[str, ...] = tuple(LEVEL_COLUMNS),
) -> None:
    """Prints the report: the funnel per variant, each of `levels` (by_store, by_day), the
    verdicts, the health and the charts."""
    console = console or Console()
    info = report["campaign"]
    console.print(
        f"[bold]campaign {info['id']}[/bold] {info['name']} ({info['status']}, holdout"
        f" {info['holdout_share']:.0%}, control {info['control'] or '-'})",
        highlight=False,
    )
    console.print(funnel_table(report))
    for key in levels:
        console.print(level_table(report, key))
    for comparison in report["ab"]:
        console.print(f"A/B {comparison['variant']} vs {comparison['control']}: ", end="")
        console.print(comparison["verdict"], markup=False)
    console.print("lift over holdout: ", end="")
    console.print(report["lift"].get("verdict", "-"), markup=False)
    health = report.get("health")
    if health:
        console.print(f"health: {'healthy' if health.get('healthy') else 'needs attention'}")
        for finding in health.get("findings", []):
            console.print(f"  {finding.get('text', finding)}", markup=False)
    for name, path in (report.get("charts") or {}).items():
        console.print(f"chart {name}: {path}", markup=False)
