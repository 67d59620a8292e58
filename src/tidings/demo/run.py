"""`tidings demo run` as a sequence of named steps over one store, sharing a `DemoRun`.

A step takes the run, does its part and returns one line saying what it did. Later issues
add their steps (triggers, ...) to STEPS, here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, desc, func, select

from tidings.demo.campaign import campaign_line
from tidings.demo.generate import (
    GBK_FILE,
    GeneratedRetailer,
    RetailerSpec,
    generate_retailer,
    period_start,
    read_manifest,
)
from tidings.demo.recommendations import recommendation_line
from tidings.demo.results import results_line
from tidings.demo.triggers import triggers_line
from tidings.imports import ImportResult
from tidings.members.importer import import_members, import_stores
from tidings.members.models import Member, Store
from tidings.orders.importer import import_orders, import_products
from tidings.orders.models import Order, OrderItem, Product

TOP_CATEGORIES = 5  # categories listed in the summary
NO_PURCHASE = "No purchase yet"  # members without an order have no RFM segment


@dataclass
class DemoRun:
    """What the steps share: the parameters, the store, and what each step found."""

    spec: RetailerSpec
    directory: Path
    engine: Engine
    generated: GeneratedRetailer | None = None
    reused_files: bool = False
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Everything the run found, as printed by `tidings demo run --json`."""
        files = self.generated.as_dict() if self.generated else None
        return {
            "directory": str(self.directory),
            "files": files,
            "reused_files": self.reused_files,
            "imports": self.imports,
            "store": self.summary,
            "profiles": self.profiles,
        }


class Step(NamedTuple):
    """One named step of the demo and what it does."""

    name: str
    action: Callable[[DemoRun], str]


def generate_files(run: DemoRun) -> str:
    """Writes the demo files, unless the directory already holds them for these parameters."""
    manifest = read_manifest(directory=run.directory)
    if manifest is not None and run.spec.same_files_as(manifest):
        spec = RetailerSpec(
            members=run.spec.members,
            months=run.spec.months,
            seed=run.spec.seed,
            dirty=run.spec.dirty,
            end=date.fromisoformat(manifest["end"]),
        )
        run.generated = GeneratedRetailer(
            directory=run.directory, spec=spec, rows=dict(manifest["rows"])
        )
        run.reused_files = True
    else:
        run.generated = generate_retailer(spec=run.spec, directory=run.directory)
    rows = run.generated.rows
    verb = "reused" if run.reused_files else "wrote"
    end = run.generated.spec.end
    start = period_start(end=end, months=run.spec.months)
    return (
        f"{verb} {rows['members.csv']:,} members and {rows['orders.csv']:,} order lines"
        f" ({start:%Y-%m-%d} to {end:%Y-%m-%d}) in {run.directory}"
    )


# The files in the order they must be imported: orders refer to all the rest.
IMPORTS: tuple[tuple[str, Callable[..., ImportResult]], ...] = (
    ("stores.csv", import_stores),
    ("products.csv", import_products),
    ("members.csv", import_members),
    (GBK_FILE, import_members),
    ("orders.csv", import_orders),
)


def import_files(run: DemoRun) -> str:
    """Imports the files into the store; importing them again changes nothing."""
    for name, importer in IMPORTS:
        path = run.directory / name
        if path.exists():
            run.imports[name] = importer(engine=run.engine, path=path).as_dict()
    rejected = sum(result["rejected"] for result in run.imports.values())
    inserted = sum(result["inserted"] for result in run.imports.values())
    return f"imported {len(run.imports)} files: {inserted:,} rows new, {rejected:,} rejected"


def summarise_store(run: DemoRun) -> str:
    """Counts what the store holds now: members, stores, orders, revenue, top categories."""
    revenue = func.sum(OrderItem.amount_cents).label("revenue")
    with run.engine.connect() as connection:
        counts = {
            "members": connection.scalar(select(func.count()).select_from(Member)),
            "stores": connection.scalar(select(func.count()).select_from(Store)),
            "products": connection.scalar(select(func.count()).select_from(Product)),
            "orders": connection.scalar(select(func.count()).select_from(Order)),
            "order_lines": connection.scalar(select(func.count()).select_from(OrderItem)),
            "revenue_cents": connection.scalar(select(func.sum(Order.amount_cents))),
            "points": connection.scalar(select(func.sum(Member.points))),
        }
        lines_total = connection.scalar(select(func.sum(OrderItem.amount_cents))) or 0
        top = connection.execute(
            select(OrderItem.category, revenue)
            .group_by(OrderItem.category)
            .order_by(desc("revenue"))
            .limit(TOP_CATEGORIES)
        ).all()
    run.summary = {key: int(value or 0) for key, value in counts.items()}
    run.summary["top_categories"] = [
        {
            "category": row.category,
            "revenue_cents": int(row.revenue),
            "share": round(int(row.revenue) / max(int(lines_total), 1), 4),
        }
        for row in top
    ]
    return (
        f"the store holds {run.summary['members']:,} members and {run.summary['orders']:,} orders"
        f" worth ¥{run.summary['revenue_cents'] / 100:,.2f}; members hold"
        f" {run.summary['points']:,} points, earned by their orders"
    )


def run_campaign(run: DemoRun) -> str:
    """Plans a campaign for the members who agreed to marketing, prints its review, and sends
    it through the simulator in stages (1%, 10%, 100%) behind the health gates."""
    return campaign_line(run.engine)


def report_results(run: DemoRun) -> str:
    """Simulates the members' reactions over the days after the campaign (clicks, orders,
    coupons, with a known true effect), credits the orders and prints the campaign's report:
    funnel, A/B verdict, lift over the holdout, health, and its charts as PNG files."""
    return results_line(run.engine, charts=run.directory / "charts")


def refresh_profiles(run: DemoRun) -> str:
    """Computes every member's profile as of the demo's last day: RFM segments and tiers."""
    from tidings.profiles import service

    as_of = run.generated.spec.end if run.generated else run.spec.end
    result = service.refresh(engine=run.engine, as_of=as_of)
    segments = dict(result.rfm_segment)
    never = result.lifecycle_stage.get("never", 0)
    if never:
        segments[NO_PURCHASE] = never
    run.profiles = {
        "as_of": as_of.isoformat(),
        "members": result.members,
        "profiles_written": result.profiles_written,
        "seconds": round(result.seconds, 3),
        "rfm_segments": segments,
        "tiers": result.tier,
    }
    tiers = ", ".join(f"{name} {count:,}" for name, count in result.tier.items())
    return (
        f"{result.profiles_written:,} profiles as of {as_of:%Y-%m-%d} in {result.seconds:.1f} s;"
        f" tiers: {tiers}"
    )


def fire_triggers(run: DemoRun) -> str:
    """Runs a day of triggers: the scheduler's birthdays, follow-ups, win-backs, run-outs,
    points and tiers, then carts, a rain alert and a member near a store."""
    return triggers_line(run.engine)


def show_recommendations(run: DemoRun) -> str:
    """Shows how many members the refresh found a next product for, and why for one."""
    return recommendation_line(run.engine)


STEPS: tuple[Step, ...] = (
    Step("generate", generate_files),
    Step("import", import_files),
    Step("profiles", refresh_profiles),
    Step("recommend", show_recommendations),
    Step("summarise", summarise_store),
    Step("campaign", run_campaign),
    Step("results", report_results),
    Step("triggers", fire_triggers),
)


def run_demo(
    *,
    run: DemoRun,
    steps: tuple[Step, ...] = STEPS,
    on_start: Callable[[str], None] | None = None,
    on_end: Callable[[str, str], None] | None = None,
) -> DemoRun:
    """Runs each step in order, telling `on_start(name)` and `on_end(name, line)` about it."""
    for step in steps:
        if on_start is not None:
            on_start(step.name)
        line = step.action(run)
        if on_end is not None:
            on_end(step.name, line)
    return run
