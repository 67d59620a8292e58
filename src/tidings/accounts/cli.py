"""`tidings apikey`: keys for integrators of the REST API."""

from __future__ import annotations

import json

import typer

from tidings.accounts import service
from tidings.db import session_scope
from tidings.migrate import ready_engine

apikey_app = typer.Typer(help="API keys for integrators (sent as 'Authorization: Bearer ...').")


@apikey_app.command("create")
def create(
    name: str = typer.Argument(..., help="A name that says who uses the key."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Creates a key and prints it once; only its hash is kept."""
    try:
        with session_scope(ready_engine()) as db_session:
            api_key, key = service.create(db_session=db_session, name=name)
    except service.ApiKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps({"name": api_key.name, "key": key}))
    else:
        typer.echo(f"{key}\n(shown once: store it now; send it as 'Authorization: Bearer <key>')")


@apikey_app.command("list")
def list_keys() -> None:
    """Lists the keys by name, with their prefix and state."""
    with session_scope(ready_engine()) as db_session:
        for api_key in service.list_keys(db_session=db_session):
            state = "revoked" if api_key.revoked_at else "active"
            typer.echo(f"{api_key.name}\t{api_key.prefix}…\t{state}")


@apikey_app.command("revoke")
def revoke(name: str = typer.Argument(..., help="Name of the key to revoke.")) -> None:
    """Revokes a key at once."""
    try:
        with session_scope(ready_engine()) as db_session:
            service.revoke(db_session=db_session, name=name)
    except service.ApiKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"revoked {name}")
