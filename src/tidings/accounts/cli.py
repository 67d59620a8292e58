"""`tidings apikey` and `tidings user`: keys for API integrators, people of the console."""

from __future__ import annotations

import json
import sys

import typer

from tidings.accounts import service, users
from tidings.accounts.models import Role
from tidings.db import session_scope
from tidings.migrate import ready_engine

apikey_app = typer.Typer(help="API keys for integrators (sent as 'Authorization: Bearer ...').")


@apikey_app.command("create")
def create(
    name: str = typer.Argument(..., help="A name that says who uses the key."),
    scope: list[str] = typer.Option(
        [], "--scope", help="A scope the key holds (repeat it); all scopes when none is given."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Creates a key and prints it once; only its hash is kept."""
    try:
        with session_scope(ready_engine()) as db_session:
            api_key, key = service.create(db_session=db_session, name=name, scopes=scope or None)
    except service.ApiKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps({"name": api_key.name, "key": key, "scopes": api_key.scopes}))
    else:
        typer.echo(f"{key}\n(shown once: store it now; send it as 'Authorization: Bearer <key>')")


@apikey_app.command("list")
def list_keys() -> None:
    """Lists the keys by name, with their prefix and state."""
    with session_scope(ready_engine()) as db_session:
        for api_key in service.list_keys(db_session=db_session):
            state = "revoked" if api_key.revoked_at else "active"
            scopes = ",".join(api_key.scopes)
            typer.echo(f"{api_key.name}\t{api_key.prefix}…\t{state}\t{scopes}")


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


user_app = typer.Typer(help="People who sign in to the web console, each with a role.")


@user_app.command("create")
def create_user(
    name: str = typer.Argument(..., help="The name the person signs in with."),
    role: Role = typer.Option(..., "--role", help="What the person may see and do."),
    store: str | None = typer.Option(
        None, "--store", help="Code of the store a store manager sees (store managers only)."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
) -> None:
    """Creates a console user; the password is asked for (or read from stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope(ready_engine()) as db_session:
            users.create_user(
                db_session=db_session, name=name, role=role, password=password, store_code=store
            )
    except users.UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"created {name} ({role.value}{f', store {store}' if store else ''})")


@user_app.command("list")
def list_users() -> None:
    """Lists the console users with their role and store."""
    with session_scope(ready_engine()) as db_session:
        for user in users.list_users(db_session=db_session):
            store = users.store_code_of(db_session=db_session, user=user) or "-"
            state = "disabled" if user.disabled_at else "active"
            typer.echo(f"{user.name}\t{user.role.value}\t{store}\t{state}")
