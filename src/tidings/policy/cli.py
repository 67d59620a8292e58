"""Command groups of the policy domain."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from tidings.config import get_settings
from tidings.policy.rules import CandidateKind, PolicyError, PolicyRules
from tidings.policy.windows import send_window_for

policy_app = typer.Typer(
    help="Whether and when a member may receive a message.", no_args_is_help=True
)


def rules_summary(rules: PolicyRules) -> dict[str, object]:
    """The rules in force as plain values (the JSON of `tidings policy show`)."""
    windows = {kind.value: str(send_window_for(kind=kind, rules=rules)) for kind in CandidateKind}
    return {
        "send_window": str(rules.send_window),
        "quiet_hours": str(rules.quiet_hours),
        "windows": windows,
        "caps": [
            {
                "selector": rule.selector,
                "applies_to": rule.who,
                "limit": rule.limit,
                "window_days": rule.window_days,
                "triggers_beyond_cap": rule.triggers_beyond_cap,
                "counts": rule.counted,
            }
            for rule in rules.caps
        ],
        "cap_precedence": "tier, then lifecycle stage, then default",
        "offer_cooldown_days": rules.offer_cooldown_days,
        "no_marketing_on_holidays": rules.no_marketing_on_holidays,
        "default_timezone": rules.default_timezone,
    }


def _table(summary: dict[str, object]) -> Table:
    table = Table(title="Rules that protect members", show_header=True)
    table.add_column("rule")
    table.add_column("in force")
    table.add_row("send window (marketing, triggers)", str(summary["send_window"]))
    table.add_row("quiet hours (all but replies)", str(summary["quiet_hours"]))
    windows = summary["windows"]
    assert isinstance(windows, dict)
    for kind, window in windows.items():
        table.add_row(f"may go ({kind})", window)
    caps = summary["caps"]
    assert isinstance(caps, list)
    for cap in caps:
        beyond = ", triggers beyond it" if cap["triggers_beyond_cap"] else ""
        shown = f"{cap['limit']} per {cap['window_days']} days ({cap['counts']}){beyond}"
        table.add_row(f"cap: {cap['applies_to']}", shown)
    if not caps:
        table.add_row("caps", "none")
    table.add_row("which cap applies", str(summary["cap_precedence"]))
    cooldown = summary["offer_cooldown_days"]
    table.add_row("offer cool-down", f"{cooldown} days per offer type" if cooldown else "off")
    holidays = "on" if summary["no_marketing_on_holidays"] else "off"
    table.add_row("no marketing on public holidays", holidays)
    table.add_row("default timezone", str(summary["default_timezone"]))
    return table


@policy_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print the rules as JSON.")) -> None:
    """Prints the rules in force: send window, quiet hours, caps, cool-down, holiday rule."""
    try:
        rules = PolicyRules.from_settings(get_settings())
    except PolicyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    summary = rules_summary(rules)
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    Console().print(_table(summary))


@policy_app.command("explain")
def explain_command(
    member_id: int = typer.Argument(..., help="The member's id."),
    campaign_id: int = typer.Argument(..., help="The campaign's id."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> None:
    """Says in one sentence whether, when and why not a member gets a campaign."""
    # Imported here: the campaigns domain builds on policy, not the other way round.
    from tidings.campaigns.explain import MemberNotFound, explain_member
    from tidings.campaigns.service import CampaignError, CampaignNotFound
    from tidings.db import session_scope
    from tidings.migrate import ready_engine

    try:
        with session_scope(ready_engine()) as session:
            answer = explain_member(
                db_session=session, campaign_id=campaign_id, member_id=member_id
            )
    except (MemberNotFound, CampaignNotFound, CampaignError, PolicyError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(answer, ensure_ascii=False))
    else:
        typer.echo(answer["explanation"])
