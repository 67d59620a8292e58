"""The `tidings` command: mounts every domain's command group."""

from __future__ import annotations

import typer

from tidings import migrate
from tidings.accounts.cli import apikey_app, user_app
from tidings.campaigns.cli import campaign_app
from tidings.campaigns.steps_cli import runs as _campaign_runs  # noqa: F401  (registers them)
from tidings.campaigns.steps_cli import steps as _campaign_steps  # noqa: F401
from tidings.config import get_settings
from tidings.content.cli import message_app
from tidings.db import make_engine
from tidings.demo.cli import demo_app
from tidings.dispatch.cli import worker_command
from tidings.inbound.cli import import_stock, tickets_app
from tidings.loyalty.cli import coupon_app, points_app
from tidings.members.cli import import_members, import_stores, member_app
from tidings.notifications.cli import notify_app
from tidings.orders.cli import import_orders, import_products
from tidings.policy.cli import policy_app
from tidings.profiles.cli import model_app, profiles_app
from tidings.reports.cli import report_app
from tidings.segments.cli import segment_app
from tidings.tracking.cli import links_app
from tidings.triggers.cli import trigger_app

app = typer.Typer(
    name="tidings",
    help="Self-hosted SMS member engagement for retailers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The store: create and migrate its tables.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import CSV files (UTF-8 or GBK, English or Chinese headers).", no_args_is_help=True
)
import_app.command("members")(import_members)
import_app.command("orders")(import_orders)
import_app.command("stores")(import_stores)
import_app.command("products")(import_products)
import_app.command("stock")(import_stock)

app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(member_app, name="member")
app.add_typer(demo_app, name="demo")
app.add_typer(apikey_app, name="apikey")
app.add_typer(user_app, name="user")
app.add_typer(profiles_app, name="profiles")
app.add_typer(model_app, name="model")
app.add_typer(segment_app, name="segment")
app.add_typer(message_app, name="message")
app.add_typer(policy_app, name="policy")
app.add_typer(campaign_app, name="campaign")
app.add_typer(tickets_app, name="tickets")
app.add_typer(points_app, name="points")
app.add_typer(coupon_app, name="coupon")
app.add_typer(report_app, name="report")
app.add_typer(trigger_app, name="trigger")
app.add_typer(notify_app, name="notify")
app.add_typer(links_app, name="links")
app.command("worker")(worker_command)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Migration to reach.")) -> None:
    """Creates or migrates the tables of the configured store (TIDINGS_DATABASE_URL)."""
    engine = make_engine()
    migrate.upgrade(engine, revision)
    typer.echo(f"store {engine.url.render_as_string()} is at revision {revision}")


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Address to bind (default from settings: 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to bind (default from settings: 8000)."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Serve only; leave sending to `tidings worker` processes."
    ),
) -> None:
    """Runs the HTTP API and, unless --no-worker, the dispatcher in one process."""
    import uvicorn

    from tidings.app import create_app
    from tidings.dispatch.background import run_dispatcher_with

    settings = get_settings()
    migrate.upgrade(make_engine())
    application = create_app()
    if not no_worker:
        run_dispatcher_with(application, settings)
    uvicorn.run(application, host=host or settings.api_host, port=port or settings.api_port)
