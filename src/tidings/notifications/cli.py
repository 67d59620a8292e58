"""`tidings notify`: send a transactional message, show one, post due status callbacks, and
print a member's preference page link."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from pydantic import ValidationError

from tidings import clock
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.migrate import ready_engine
from tidings.notifications import callbacks, preferences, service
from tidings.notifications.models import NotificationKind
from tidings.notifications.rendering import NotificationError
from tidings.notifications.schemas import MessageCreate

notify_app = typer.Typer(
    help="Transactional messages: send one, show one, post status callbacks, preference links.",
    no_args_is_help=True,
)
JSON_HELP = "Print the result as JSON."


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _values(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            _fail(f"--value '{pair}' must be NAME=VALUE, e.g. order=8801")
        found[name.strip()] = value
    return found


@notify_app.command("send")
def send(
    key: str = typer.Option(..., "--key", help="Idempotency key: the same key sends once."),
    member: int = typer.Option(None, "--member", help="The member's id."),
    phone: str = typer.Option(None, "--phone", help="A mobile number instead of a member."),
    text: str = typer.Option(None, "--text", help="Fixed text."),
    template: str = typer.Option(None, "--template", help="Text with {fields} from --value."),
    value: list[str] = typer.Option([], "--value", help="A template value, NAME=VALUE."),
    kind: NotificationKind = typer.Option(NotificationKind.NOTIFICATION, "--kind"),
    urgent: bool = typer.Option(False, "--urgent", help="Send even in quiet hours."),
    callback_url: str = typer.Option(None, "--callback-url", help="Receives status changes."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Sends one transactional message at once (queued for the worker)."""
    try:
        request = MessageCreate(
            idempotency_key=key,
            member_id=member,
            phone=phone,
            text=text,
            template=template,
            values=_values(value),
            kind=kind,
            urgent=urgent,
            callback_url=callback_url,
        )
    except ValidationError as error:
        _fail("; ".join(str(e["msg"]) for e in error.errors()))
    try:
        with session_scope(ready_engine()) as session:
            answer = service.send_one(
                db_session=session, request=request, settings=get_settings(), now=clock.now()
            )
    except NotificationError as error:
        _fail(str(error))
    if as_json:
        _print_json(answer.model_dump(mode="json"))
        return
    when = f" at {answer.send_at:%Y-%m-%d %H:%M} UTC" if answer.send_at else ""
    reason = f" ({answer.skip_reason})" if answer.skip_reason else ""
    again = " (this key was used before)" if answer.replayed else ""
    typer.echo(f"message {answer.id}: {answer.state}{when}{reason}{again}")


@notify_app.command("show")
def show(
    message_id: int = typer.Argument(..., help="The message's id."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Shows a message's state and history (a verification code masked)."""
    try:
        with session_scope(ready_engine()) as session:
            status = service.get_message(db_session=session, message_id=message_id)
    except NotificationError as error:
        _fail(str(error))
    if as_json:
        _print_json(status.model_dump(mode="json"))
        return
    typer.echo(f"message {status.id} ({status.kind}) to {status.phone}: {status.state}")
    typer.echo(f"  {status.text}")
    for step in status.history:
        detail = f" — {step.detail}" if step.detail else ""
        typer.echo(f"  {step.at:%Y-%m-%d %H:%M:%S} {step.state}{detail}")


@notify_app.command("callbacks")
def post_callbacks(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Posts the status callbacks due now (the worker does this every second)."""
    counts = callbacks.run_pass(ready_engine(), settings=get_settings())
    if as_json:
        _print_json(counts)
        return
    typer.echo(", ".join(f"{name} {count}" for name, count in counts.items()))


@notify_app.command("link")
def link(member_id: int = typer.Argument(..., help="The member's id.")) -> None:
    """Prints a member's own preference page link (signed; see TIDINGS_PREFERENCE_LINK_DAYS)."""
    typer.echo(preferences.preference_link(member_id, get_settings()))
