"""`tidings import members|stores` and `tidings member show|timeline`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tidings.config import get_settings
from tidings.db import session_scope
from tidings.imports import ImportFileError, ImportResult
from tidings.inbound.timeline import DEFAULT_LIMIT, member_timeline
from tidings.members import importer, service
from tidings.migrate import ready_engine

member_app = typer.Typer(help="Look up members.", no_args_is_help=True)

MAPPING_HELP = (
    "A file naming the field of each column: a JSON object such as"
    ' {"客户手机": "phone", "卡号": "member_code"}, or lines such as \'客户手机=phone\'.'
)
REJECTS_HELP = "Where to write rejected rows (default: <name>.rejects.csv beside the file)."
JSON_HELP = "Print the counts as JSON."


def run_import(action: Callable[..., ImportResult], *, as_json: bool, **arguments: Any) -> None:
    """Runs an import, prints its counts, and exits 2 with one line when the file is unreadable."""
    try:
        result = action(engine=ready_engine(), progress=sys.stdout.isatty(), **arguments)
    except ImportFileError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    typer.echo(
        f"{result.rows} rows: {result.inserted} inserted, {result.updated} updated,"
        f" {result.merged_duplicates} duplicates merged, {result.rejected} rejected"
    )
    if result.warnings:
        typer.echo(f"{result.warnings} kept with a warning (see the rejects file)")
    if result.rejects_file:
        typer.echo(f"rejected rows and their reasons: {result.rejects_file}")


def import_members(
    file: Path = typer.Argument(
        ..., help="CSV of members, UTF-8 or GBK, English or Chinese headers."
    ),
    mapping: Path = typer.Option(None, "--mapping", help=MAPPING_HELP),
    rejects: Path = typer.Option(None, "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Imports members from a CSV file: cleans phones, dates and genders, merges duplicates.

    Re-importing the same file changes nothing. Fields: phone, member_code, name, gender,
    birthday, tier, points, store_code, registered_at, consent (手机号, 会员编号, 姓名, 性别,
    生日, 会员等级, 积分, 门店, 注册时间, 是否同意营销 ...).
    """
    run_import(
        importer.import_members, as_json=as_json, path=file, mapping=mapping, rejects_path=rejects
    )


def import_stores(
    file: Path = typer.Argument(
        ..., help="CSV of stores: code, name, city, type, latitude, longitude."
    ),
    mapping: Path = typer.Option(None, "--mapping", help=MAPPING_HELP),
    rejects: Path = typer.Option(None, "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Imports stores from a CSV file, adding new codes and updating known ones."""
    run_import(
        importer.import_stores, as_json=as_json, path=file, mapping=mapping, rejects_path=rejects
    )


@member_app.command("show")
def show(
    key: str = typer.Argument(..., help="The member's phone (any common form) or member code."),
    as_json: bool = typer.Option(False, "--json", help="Print the member as JSON."),
) -> None:
    """Shows one member: phone, name, birthday, store, tier, points, consent and tags."""
    with session_scope(ready_engine()) as db_session:
        member = service.find_member(
            db_session=db_session, key=key, region=get_settings().default_region
        )
        if member is None:
            typer.echo(f"error: no member has the phone or member code '{key}'", err=True)
            raise typer.Exit(1)
        view = service.member_view(db_session=db_session, member=member)
    if as_json:
        typer.echo(json.dumps(view, ensure_ascii=False))
        return
    for name, value in view.items():
        typer.echo(f"{name}: {value if value is not None else '-'}")


@member_app.command("timeline")
def timeline(
    key: str = typer.Argument(..., help="The member's phone (any common form) or member code."),
    limit: int = typer.Option(
        DEFAULT_LIMIT, "--limit", min=1, help="Show at most this many entries."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as a JSON list."),
) -> None:
    """Shows a member's orders, messages, replies and tickets, newest first."""
    with session_scope(ready_engine()) as db_session:
        member = service.find_member(
            db_session=db_session, key=key, region=get_settings().default_region
        )
        if member is None:
            typer.echo(f"error: no member has the phone or member code '{key}'", err=True)
            raise typer.Exit(1)
        entries = member_timeline(db_session=db_session, member_id=member.id, limit=limit)
    if as_json:
        typer.echo(json.dumps(entries, ensure_ascii=False))
        return
    if not entries:
        typer.echo("nothing yet: no orders, messages, replies or tickets")
    for entry in entries:
        typer.echo(f"{entry['at']}  {entry['kind']:<8} {entry['summary']}")
