"""`tidings profiles` (refresh, recommend, tag rules) and `tidings model` (fit the models)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from tidings.db import session_scope
from tidings.migrate import ready_engine
from tidings.profiles import service, tagrules
from tidings.profiles.bgnbd import ModelFitError
from tidings.profiles.sendtime import SendWindowError
from tidings.profiles.thresholds import ProfileSettingsError

profiles_app = typer.Typer(
    help="Per-member profiles: RFM, tiers, tags, predictions.", no_args_is_help=True
)
tag_rule_app = typer.Typer(
    help="Tags given by rules in the segment language, applied on every refresh.",
    no_args_is_help=True,
)
profiles_app.add_typer(tag_rule_app, name="tag-rule")

model_app = typer.Typer(
    help="Fit the BG/NBD and Gamma-Gamma models of purchasing.", no_args_is_help=True
)

JSON_HELP = "Print the result as JSON."


def _fail(error: Exception) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(ValueError(f"{option} {text!r} is not a date; write it as YYYY-MM-DD"))


def _print_json(values: Any) -> None:
    typer.echo(json.dumps(values, ensure_ascii=False, indent=1))


@contextmanager
def _store() -> Iterator[Engine]:
    """The configured store for one command; its connections are closed when it ends."""
    engine = ready_engine()
    try:
        yield engine
    finally:
        engine.dispose()


@profiles_app.command("refresh")
def refresh(
    as_of: str = typer.Option(None, "--as-of", help="Day to compute as of (default: today)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Recomputes every member's profile from orders and writes them back."""
    day = _day(as_of, "--as-of")
    try:
        with _store() as engine:
            result = service.refresh(engine=engine, as_of=day)
    except (SendWindowError, ProfileSettingsError) as error:
        _fail(error)
    if as_json:
        _print_json(result.as_dict())
        return
    typer.echo(
        f"profiles as of {result.as_of.isoformat()}: {result.profiles_written:,} written for"
        f" {result.members:,} members in {result.seconds:.1f} s (model: {result.model})"
    )
    console = Console(width=120)
    for title, counts in (
        ("RFM segment", result.rfm_segment),
        ("tier", result.tier),
        ("lifecycle stage", result.lifecycle_stage),
    ):
        table = Table(title, "members")
        for name, count in counts.items():
            table.add_row(name, f"{count:,}")
        console.print(table)
    for name, message in result.tag_rule_errors.items():
        typer.echo(f"tag rule '{name}' was skipped: {message}", err=True)


@profiles_app.command("recommend")
def recommend(
    key: str = typer.Argument(..., help="The member's phone (any common form) or member code."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows the product to offer a member next, its category and the reason."""
    from tidings.config import get_settings
    from tidings.members.service import find_member
    from tidings.profiles.recommendations import RecommendationError, get_recommendation

    try:
        with _store() as engine, session_scope(engine) as db_session:
            member = find_member(
                db_session=db_session, key=key, region=get_settings().default_region
            )
            if member is None:
                raise RecommendationError(f"no member has the phone or member code '{key}'")
            found = get_recommendation(db_session=db_session, member_id=member.id)
    except RecommendationError as error:
        _fail(error)
    if as_json:
        _print_json(found.model_dump(mode="json"))
        return
    typer.echo(
        f"{found.product} ({found.category or '-'}, {found.sku})\n"
        f"{found.reason_zh}\n{found.reason_en}\n"
        f"confidence {found.confidence:.0%}, lift {found.lift:.2f}, as of {found.as_of}"
    )


@tag_rule_app.command("add")
def add_tag_rule(
    name: str = typer.Argument(..., help="The tag, e.g. 榴莲爱好者."),
    rule: str = typer.Argument(..., help="Who gets it, e.g. 'orders_in(\"热带水果\", 30d) >= 3'."),
) -> None:
    """Saves a tag rule (a new version if the tag has one already)."""
    from tidings.segments.cli import show_rule_error
    from tidings.segments.lexer import RuleError

    try:
        with _store() as engine, session_scope(engine) as db_session:
            row = tagrules.add_tag_rule(db_session=db_session, name=name, rule=rule)
            version = row.version
    except tagrules.TagRuleError as error:
        if isinstance(error.__cause__, RuleError):
            show_rule_error(rule, error.__cause__)
        _fail(error)
    typer.echo(f"tag rule '{name}' saved as version {version}; applied on the next refresh")


@tag_rule_app.command("list")
def list_tag_rules(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Lists every tag rule's latest version."""
    with _store() as engine, session_scope(engine) as db_session:
        rows: list[dict[str, Any]] = [
            {"name": row.name, "version": row.version, "rule": row.rule, "active": row.active}
            for row in tagrules.list_tag_rules(db_session=db_session)
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("tag", "version", "active", "rule")
    for row in rows:
        table.add_row(
            row["name"], str(row["version"]), "yes" if row["active"] else "no", row["rule"]
        )
    Console(width=140).print(table)


@tag_rule_app.command("disable")
def disable_tag_rule(name: str = typer.Argument(..., help="The tag to stop giving.")) -> None:
    """Stops applying a tag rule from the next refresh on (kept in the history)."""
    try:
        with _store() as engine, session_scope(engine) as db_session:
            row = tagrules.disable_tag_rule(db_session=db_session, name=name)
            version = row.version
    except tagrules.TagRuleError as error:
        _fail(error)
    typer.echo(f"tag rule '{name}' disabled (version {version})")


@model_app.command("fit")
def fit(
    calibration_end: str = typer.Option(
        ..., "--calibration-end", help="Last day of the history the models learn from."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fits BG/NBD and Gamma-Gamma to purchases up to a day and keeps the fit for refreshes."""
    day = _day(calibration_end, "--calibration-end")
    assert day is not None
    try:
        with _store() as engine:
            result = service.fit(engine=engine, calibration_end=day)
    except ModelFitError as error:
        _fail(error)
    values = result.as_dict()
    if as_json:
        _print_json(values)
        return
    bg, gg = values["bgnbd"], values["gamma_gamma"]
    typer.echo(
        f"{values['members']:,} members up to {day.isoformat()}\n"
        f"BG/NBD (weeks): r={bg['r']:.4f} alpha={bg['alpha']:.4f} a={bg['a']:.4f}"
        f" b={bg['b']:.4f} log-likelihood={bg['log_likelihood']:.2f}"
    )
    if gg:
        typer.echo(f"Gamma-Gamma (yuan): p={gg['p']:.4f} q={gg['q']:.4f} v={gg['v']:.4f}")
    else:
        typer.echo("Gamma-Gamma: not fitted (no member has a repeat purchase yet)")
