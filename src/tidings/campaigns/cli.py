"""`tidings campaign`: create, plan, review, send, and steer a campaign (pause, resume, cancel)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tidings.campaigns import review as reviewing
from tidings.campaigns import service
from tidings.campaigns.models import CampaignKind
from tidings.campaigns.promote import PROMOTION
from tidings.campaigns.rollout import GateError, Gates
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.campaigns.steps import StepError, step_fields
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.dispatch import service as dispatch
from tidings.dispatch.worker import Worker
from tidings.migrate import ready_engine
from tidings.segments.cli import show_rule_error
from tidings.segments.lexer import RuleError

campaign_app = typer.Typer(
    help="Campaigns: create, plan, review, send, and steer them.", no_args_is_help=True
)
JSON_HELP = "Print the result as JSON."
ID_HELP = "The campaign's id."
WAIT_POLL = 0.5  # seconds between checks while waiting for a campaign to finish
T = TypeVar("T")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _session(engine: Engine | None = None) -> Iterator[Session]:
    """A committed session; errors a user can cause become one line and exit code 2."""
    try:
        with session_scope(engine or ready_engine()) as session:
            yield session
    except (
        service.CampaignError,
        service.CampaignNotFound,
        service.CampaignStateError,
        GateError,
    ) as error:
        _fail(str(error))


def _weights(variants: list[str], weights: list[int]) -> list[int]:
    """Weights of [template, *variants]: one each in order, or one per --variant as percent
    (the template takes the rest), or none (equal shares)."""
    if not weights:
        return [1] * (len(variants) + 1)
    if len(weights) == len(variants) + 1:
        return weights
    if len(weights) == len(variants) and sum(weights) < 100:
        return [100 - sum(weights), *weights]
    _fail(
        f"{len(weights)} --weight for {len(variants) + 1} variants: give one per variant"
        " (the --template first), or one per --variant in percent adding up to less than 100"
    )


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


@campaign_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="The campaign's name."),
    segment: str = typer.Option(None, "--segment", help="A saved segment as the audience."),
    rule: str = typer.Option(None, "--rule", help="A segment rule as the audience."),
    template: str = typer.Option(..., "--template", help="The message (variant A)."),
    variant: list[str] = typer.Option([], "--variant", help="Another variant's message."),
    weight: list[int] = typer.Option([], "--weight", help="Variant weights (see the docs)."),
    holdout: float = typer.Option(0.0, "--holdout", help="Share kept out, e.g. 0.1."),
    kind: CampaignKind = typer.Option(CampaignKind.MARKETING, "--kind", help="What it is."),
    offer_type: str = typer.Option(None, "--offer-type", help="Offer type, for cool-downs."),
    category: str = typer.Option(
        None, "--category", help="Kind of message: promotions, new_arrivals, tips, surveys."
    ),
    schedule: str = typer.Option(
        "now", "--schedule", help="now | ISO time | best-hour[:DATE] | spread:FROM-TO"
    ),
    expires: str = typer.Option(None, "--expires", help="ISO time, or a duration: 2d, 12h."),
    provider: str = typer.Option(None, "--provider", help="Provider (default from settings)."),
    rollout: str = typer.Option("100", "--rollout", help="Stages in percent, e.g. 1,10,100."),
    gates: str = typer.Option(
        None, "--gates", help="e.g. delivery=0.98,opt_out=0.003,complaint=0.001,min_receipts=200"
    ),
    promote_winner: bool = typer.Option(
        False,
        "--promote-winner",
        help="Send later rollout stages with a variant that beats the control on orders.",
    ),
    coupon: str = typer.Option(None, "--coupon", help="A coupon code for {coupon}."),
    coupon_value: float = typer.Option(
        None, "--coupon-value", help="Give each member a coupon of this many yuan off."
    ),
    coupon_percent: int = typer.Option(
        None, "--coupon-percent", help="Give each member a coupon of this percent off."
    ),
    coupon_min_spend: float = typer.Option(
        0.0, "--coupon-min-spend", help="Least an order must be (yuan) to use the coupon."
    ),
    coupon_valid_days: int = typer.Option(
        30, "--coupon-valid-days", help="Days the coupon stays valid from planning."
    ),
    coupon_per_member: int = typer.Option(
        1, "--coupon-per-member", help="Coupons each member gets; {coupon} shows the first."
    ),
    link: str = typer.Option(
        None, "--link", help="The URL {link} leads to, as each member's own short link."
    ),
    utm_medium: str = typer.Option(None, "--utm-medium", help="utm_medium (default: setting)."),
    utm_campaign: str = typer.Option(None, "--utm-campaign", help="utm_campaign (default: id)."),
    no_utm: bool = typer.Option(False, "--no-utm", help="Add no UTM parameters to the link."),
    follow_up: list[str] = typer.Option(
        [], "--follow-up", help="A follow-up step, DELAY:REACTION:TEMPLATE (2d:not-clicked:...)."
    ),
    countdown: str = typer.Option(None, "--countdown", help="The date a sequence counts to."),
    every: str = typer.Option(
        None, "--every", help="Recur, e.g. 'wed 10:00' or 'monthly 1 09:00': a run each time."
    ),
    countdown_step: list[str] = typer.Option(
        [], "--countdown-step", help="A countdown step, OFFSET:AUDIENCE:TEMPLATE (-3d 10:00::...)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Creates a draft campaign: its audience, variants, holdout, schedule, rollout, steps."""
    shares = _weights(variant, weight)
    offer = None
    if coupon_value is not None or coupon_percent is not None:
        offer = {
            "value_cents": None if coupon_value is None else round(coupon_value * 100),
            "discount_percent": coupon_percent,
            "min_spend_cents": round(coupon_min_spend * 100),
            "valid_days": coupon_valid_days,
            "per_member": coupon_per_member,
        }
    try:
        stages = [int(part) for part in rollout.split(",") if part.strip()]
    except ValueError:
        _fail(f"rollout '{rollout}' must be percentages like 1,10,100")
    try:
        steps = step_fields(
            follow_ups=follow_up,
            countdown=countdown,
            countdown_steps=countdown_step,
            timezone=get_settings().default_timezone,
        )
    except StepError as error:
        _fail(str(error))
    try:
        gate_values = Gates.parse(gates).as_json() if gates else None
        spec = CampaignCreate(
            name=name,
            kind=kind,
            segment=segment,
            rule=rule,
            variants=[
                VariantCreate(template=text, weight=share)
                for text, share in zip([template, *variant], shares, strict=True)
            ],
            holdout=holdout,
            offer_type=offer_type,
            category=category,
            schedule=schedule,
            expires=expires,
            provider=provider,
            rollout=stages,
            gates=gate_values,
            promote_winner=promote_winner,
            coupon=coupon,
            coupon_offer=offer,
            link=link,
            link_utm=not no_utm,
            utm_medium=utm_medium,
            utm_campaign=utm_campaign,
            steps=steps,
            every=every,
        )
    except ValidationError as error:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()))
    except GateError as error:
        _fail(str(error))
    try:
        with _session() as session:
            campaign_id = service.create(db_session=session, spec=spec).id
    except RuleError as error:
        show_rule_error(rule or "", error)
    if as_json:
        _print_json({"id": campaign_id})
    else:
        typer.echo(f"campaign {campaign_id} created; next: tidings campaign plan {campaign_id}")


def _run(action: Callable[[Session], T]) -> T:
    with _session() as session:
        return action(session)


@campaign_app.command("plan")
def plan(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Plans the campaign's messages (again, if it was planned): skips, holdout, variants, cost."""
    summary = _run(lambda s: service.plan(db_session=s, campaign_id=campaign_id))
    if as_json:
        _print_json(summary)
        return
    table = Table("", "members", title=f"plan of campaign {campaign_id}")
    table.add_row("audience", f"{summary['audience']:,}")
    table.add_row("holdout", f"{summary['holdout']:,}")
    table.add_row("planned", f"{summary['planned']:,}")
    for reason, n in summary["skipped"].items():
        table.add_row(f"skipped: {reason}", f"{n:,}")
    table.add_row("SMS parts", f"{summary['segments_total']:,}")
    table.add_row("estimated cost", f"¥{summary['cost_cents'] / 100:,.2f}")
    Console().print(table)


def print_review(result: dict[str, Any], console: Console | None = None) -> None:
    """Prints a review readably (also used by the demo)."""
    out = console or Console()
    out.print(
        f"[bold]campaign {result['id']} · {result['name']}[/bold] ({result['kind']},"
        f" {result['status']}); schedule: {result['schedule']};"
        f" rollout {','.join(map(str, result['rollout_stages']))}%"
    )
    out.print(
        f"audience {result['audience']:,} · holdout {result['holdout']:,}"
        f" ({result['holdout_share']:.0%}) · planned {result['planned']:,}"
        f" · {result['segments_total']:,} parts · estimated ¥{result['cost_cents'] / 100:,.2f}"
    )
    table = Table("variant", "weight", "messages", "parts", "cost", "template")
    for v in result["variants"]:
        cost = f"¥{v['cost_cents'] / 100:,.2f}"
        table.add_row(
            v["name"],
            str(v["weight"]),
            f"{v['messages']:,}",
            f"{v['segments']:,}",
            cost,
            v["template"],
        )
    out.print(table)
    if result["skipped"]:
        skips = ", ".join(f"{reason} {n:,}" for reason, n in result["skipped"].items())
        out.print(f"skipped: {skips}")
    parts = ", ".join(f"{n:,} × {p} part(s)" for p, n in result["parts"].items())
    out.print(f"parts per message: {parts or 'none'}")
    zone = get_settings().default_timezone
    out.print(f"first messages (send times in {zone}):")
    for m in result["first_messages"]:
        at = datetime.fromisoformat(m["send_at"]).astimezone(ZoneInfo(zone))
        out.print(
            f"  {m['phone']} variant {m['variant']} {at:%Y-%m-%d %H:%M} · {m['text']}",
            highlight=False,
        )
    if not result["findings"]:
        out.print("content findings: none")
    for f in result["findings"]:
        out.print(
            f"  {f['severity']} {f['code']} ({f['variant']}, {f['where']}): {f['message']}",
            highlight=False,
        )


@campaign_app.command("review")
def review(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    first: int = typer.Option(reviewing.FIRST_SHOWN, "--first", help="Messages shown."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows what the plan will do before anything is sent."""
    result = _run(lambda s: reviewing.review(db_session=s, campaign_id=campaign_id, first=first))
    if as_json:
        _print_json(result)
    else:
        print_review(result)


def wait_until_settled(
    engine: Engine,
    campaign_id: int,
    *,
    timeout: float,
    worker: Callable[[], Worker] | None = None,
) -> None:
    """Runs the dispatcher until the campaign completes, pauses or is cancelled, or until
    nothing of it can go soon (the rest waits for its send window: a worker sends it then)."""
    deadline = time.monotonic() + timeout
    make = worker or (lambda: Worker(engine, settings=get_settings()))
    while True:
        asyncio.run(make().run(once=True))
        with session_scope(engine) as session:
            dispatch.complete_finished(db_session=session)
            campaign = service.get(db_session=session, campaign_id=campaign_id)
            if service.is_settled(campaign) or time.monotonic() > deadline:
                return
            if not service.goes_soon(db_session=session, campaign_id=campaign_id):
                return
        time.sleep(WAIT_POLL)


@campaign_app.command("send")
def send(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    wait: bool = typer.Option(False, "--wait", help="Send here and wait until it is done."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait at most."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Starts sending a planned campaign (its first rollout stage); --wait sends it here."""
    engine = ready_engine()
    queued = _run(lambda s: service.send(db_session=s, campaign_id=campaign_id))
    if wait:
        wait_until_settled(engine, campaign_id, timeout=timeout)
    with _session(engine) as session:
        counts = service.outcome_counts(db_session=session, campaign_id=campaign_id)
        state = str(service.get(db_session=session, campaign_id=campaign_id).status)
    if as_json:
        _print_json({"status": state, **counts})
        return
    typer.echo(f"campaign {campaign_id} is {state}; {queued:,} messages queued at the start")
    typer.echo(", ".join(f"{n:,} {name}" for name, n in counts.items()))


def _status_line(result: dict[str, Any]) -> str:
    counts = ", ".join(f"{n:,} {state}" for state, n in sorted(result["messages"].items()))
    stages = result["rollout_stages"]
    stage = (
        f"stage {result['rollout_stage'] + 1} of {len(stages)} ({stages[result['rollout_stage']]}%)"
    )
    reason = f" ({result['status_reason']})" if result["status_reason"] else ""
    return (
        f"campaign {result['id']} · {result['name']}: {result['status']}{reason}; rollout"
        f" {stage}; messages: {counts or 'none'}"
    )


@campaign_app.command("status")
def status(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows the campaign's status, rollout stage and gate checks, and its messages by state."""
    result = _run(lambda s: service.status(db_session=s, campaign_id=campaign_id))
    if as_json:
        _print_json(result)
        return
    typer.echo(_status_line(result))
    for check in result["rollout_report"]:
        if check.get("kind") == PROMOTION:
            typer.echo(
                f"  after stage {check['stage'] + 1}: later stages go with {check['winner']}"
                f" ({check['verdict']}; {check['messages']:,} messages changed)"
            )
            continue
        verdict = "passed" if check["passed"] else "; ".join(check["failures"])
        typer.echo(f"  gate after stage {check['stage'] + 1} ({check['percent']}%): {verdict}")


def _steer(campaign_id: int, action: Callable[[Session], object], as_json: bool) -> None:
    _run(action)
    result = _run(lambda s: service.status(db_session=s, campaign_id=campaign_id))
    if as_json:
        _print_json({"id": campaign_id, "status": result["status"]})
    else:
        typer.echo(_status_line(result))


@campaign_app.command("pause")
def pause(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Pauses the campaign: nothing more of it is sent, also of what is queued, until resumed."""
    _steer(campaign_id, lambda s: service.pause(db_session=s, campaign_id=campaign_id), as_json)


@campaign_app.command("resume")
def resume(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Resumes a paused campaign; after a failed gate, this releases the next stage."""
    _steer(campaign_id, lambda s: service.resume(db_session=s, campaign_id=campaign_id), as_json)


@campaign_app.command("cancel")
def cancel(
    campaign_id: int = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Cancels the campaign and every message of it not yet handed to a provider."""
    _steer(campaign_id, lambda s: service.cancel(db_session=s, campaign_id=campaign_id), as_json)


@campaign_app.command("list")
def list_campaigns(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Lists every campaign with its status."""
    rows = _run(lambda s: service.list_campaigns(db_session=s))
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "name", "kind", "status", "messages")
    for row in rows:
        table.add_row(
            str(row["id"]), row["name"], row["kind"], row["status"], f"{row['messages']:,}"
        )
    Console().print(table)
