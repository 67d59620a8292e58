"""`tidings demo ...`: the synthetic retailer."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tidings.config import get_settings
from tidings.demo.generate import DemoError, RetailerSpec, generate_retailer, yesterday
from tidings.demo.run import DemoRun, run_demo
from tidings.imports import ImportFileError
from tidings.migrate import ready_engine

demo_app = typer.Typer(
    help="The demo retailer: generate it, import it, run the main job.", no_args_is_help=True
)

MEMBERS = typer.Option(20_000, "--members", help="How many members the chain has.")
MONTHS = typer.Option(12, "--months", help="Months of orders, up to yesterday.")
SEED = typer.Option(7, "--seed", help="The same seed writes byte-identical files.")
DIRTY = typer.Option(
    0.0, "--dirty", help="Share of rows to mess up as a POS export would (e.g. 0.03)."
)
AS_JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def _demo_directory(directory: Path | None) -> Path:
    return directory if directory is not None else get_settings().var_dir / "demo"


def _end(text: str | None) -> date:
    if text is None:
        return yesterday()
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise DemoError(f"--end {text!r}: write the last day of orders as YYYY-MM-DD") from error


@demo_app.command("generate")
def generate(
    members: int = MEMBERS,
    months: int = MONTHS,
    seed: int = SEED,
    out: Path | None = typer.Option(None, "--out", help="Directory to write (default var/demo)."),
    dirty: float = DIRTY,
    end: str | None = typer.Option(
        None, "--end", help="Last day of orders, YYYY-MM-DD (default yesterday)."
    ),
    as_json: bool = AS_JSON,
) -> None:
    """Writes stores.csv, products.csv, members.csv and orders.csv of a demo retail chain."""
    directory = _demo_directory(out)
    try:
        spec = RetailerSpec(members=members, months=months, seed=seed, dirty=dirty, end=_end(end))
        generated = generate_retailer(spec=spec, directory=directory)
    except DemoError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(generated.as_dict(), ensure_ascii=False))
        return
    for name, rows in generated.rows.items():
        typer.echo(f"{directory / name}\t{rows:,} rows")


@demo_app.command("run")
def run(
    members: int = MEMBERS,
    months: int = MONTHS,
    seed: int = SEED,
    directory: Path | None = typer.Option(
        None, "--dir", help="Where the demo files live (default var/demo)."
    ),
    dirty: float = DIRTY,
    as_json: bool = AS_JSON,
) -> None:
    """Generates the demo retailer (once per parameters), imports it, profiles it, sums it up."""
    console = Console(quiet=as_json)
    try:
        spec = RetailerSpec(members=members, months=months, seed=seed, dirty=dirty, end=_end(None))
        spec.check()
        demo = DemoRun(spec=spec, directory=_demo_directory(directory), engine=ready_engine())
        status = console.status("")
        status.start()
        try:
            run_demo(
                run=demo,
                on_start=lambda name: status.update(f"{name} ..."),
                on_end=lambda name, line: console.print(f"[green]✓[/] {name}: {line}"),
            )
        finally:
            status.stop()
    except (DemoError, ImportFileError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(demo.as_dict(), ensure_ascii=False))
        return
    _print_summary(console, demo)


def _print_summary(console: Console, demo: DemoRun) -> None:
    """Prints the per-file import counts and what the store now holds."""
    imports = Table(title="Imports", title_justify="left")
    for column in ("file", "rows", "inserted", "updated", "merged", "rejected"):
        imports.add_column(column, justify="left" if column == "file" else "right")
    for name, result in demo.imports.items():
        imports.add_row(
            name,
            *(
                f"{result[key]:,}"
                for key in ("rows", "inserted", "updated", "merged_duplicates", "rejected")
            ),
        )
    console.print(imports)
    for name, result in demo.imports.items():
        if result["rejected"]:
            console.print(f"rejects of {name}: {result['rejects_file']}")
    store: dict[str, Any] = demo.summary
    totals = Table(title="Store", title_justify="left", show_header=False)
    for key in ("members", "stores", "products", "orders", "order_lines"):
        totals.add_row(key.replace("_", " "), f"{store[key]:,}")
    totals.add_row("revenue", f"¥{store['revenue_cents'] / 100:,.2f}")
    console.print(totals)
    top = Table(title="Top categories by revenue", title_justify="left")
    top.add_column("category")
    top.add_column("revenue", justify="right")
    top.add_column("share", justify="right")
    for row in store["top_categories"]:
        top.add_row(row["category"], f"¥{row['revenue_cents'] / 100:,.2f}", f"{row['share']:.1%}")
    console.print(top)
    _print_profiles(console, demo)


def _print_profiles(console: Console, demo: DemoRun) -> None:
    """Prints the members per RFM segment and per tier, as of the demo's last day."""
    profiles: dict[str, Any] = demo.profiles
    if not profiles:
        return
    members = max(profiles["members"], 1)
    for title, counts in (
        (f"RFM segments as of {profiles['as_of']}", profiles["rfm_segments"]),
        (f"Tiers as of {profiles['as_of']}", profiles["tiers"]),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("members", justify="right")
        table.add_column("share", justify="right")
        for name, count in counts.items():
            table.add_row(name, f"{count:,}", f"{count / members:.1%}")
        console.print(table)
