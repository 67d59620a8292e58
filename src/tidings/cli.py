"""The `tidings` command: mounts every domain's command group.

A group's module is imported when the group is used, not when the command starts: importing
every domain (campaigns, reports, scipy's statistics, alembic ...) took about three seconds,
which `tidings member show` and every other command paid before doing anything. Listing the
commands (`tidings --help`) imports them all.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup
from typer.main import get_command, get_group

# Name: (module, attribute: a Typer app or a command function, modules that add commands to it).
Lazy = dict[str, tuple[str, str, tuple[str, ...]]]
GROUPS: Lazy = {
    "member": ("tidings.members.cli", "member_app", ()),
    "demo": ("tidings.demo.cli", "demo_app", ()),
    "apikey": ("tidings.accounts.cli", "apikey_app", ()),
    "user": ("tidings.accounts.cli", "user_app", ()),
    "profiles": ("tidings.profiles.cli", "profiles_app", ()),
    "model": ("tidings.profiles.cli", "model_app", ()),
    "segment": ("tidings.segments.cli", "segment_app", ()),
    "message": ("tidings.content.cli", "message_app", ()),
    "policy": ("tidings.policy.cli", "policy_app", ()),
    "campaign": ("tidings.campaigns.cli", "campaign_app", ("tidings.campaigns.steps_cli",)),
    "tickets": ("tidings.inbound.cli", "tickets_app", ()),
    "points": ("tidings.loyalty.cli", "points_app", ()),
    "coupon": ("tidings.loyalty.cli", "coupon_app", ()),
    "report": ("tidings.reports.cli", "report_app", ()),
    "trigger": ("tidings.triggers.cli", "trigger_app", ()),
    "notify": ("tidings.notifications.cli", "notify_app", ()),
    "links": ("tidings.tracking.cli", "links_app", ()),
    "worker": ("tidings.dispatch.cli", "worker_command", ()),
}
IMPORTS: Lazy = {
    "members": ("tidings.members.cli", "import_members", ()),
    "orders": ("tidings.orders.cli", "import_orders", ()),
    "stores": ("tidings.members.cli", "import_stores", ()),
    "products": ("tidings.orders.cli", "import_products", ()),
    "stock": ("tidings.inbound.cli", "import_stock", ()),
}


class _LazyGroup(TyperGroup):
    """A group whose commands in `lazy` are imported when first asked for."""

    lazy: ClassVar[Lazy] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, attribute, extensions = self.lazy[cmd_name]
        loaded = getattr(import_module(module), attribute)
        for extension in extensions:
            import_module(extension)
        command = _as_command(loaded, cmd_name)
        command.name = cmd_name
        return command


def _as_command(loaded: Any, name: str) -> Any:
    """A Typer app as a group (even with one command), a function as a command."""
    if isinstance(loaded, typer.Typer):
        return get_group(loaded)
    single = typer.Typer(add_completion=False)
    single.command(name)(loaded)
    return get_command(single)


class _Commands(_LazyGroup):
    lazy = GROUPS


class _Imports(_LazyGroup):
    lazy = IMPORTS


app = typer.Typer(
    name="tidings",
    help="Self-hosted SMS member engagement for retailers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
db_app = typer.Typer(help="The store: create and migrate its tables.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import CSV files (UTF-8 or GBK, English or Chinese headers).",
    no_args_is_help=True,
    cls=_Imports,
)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Migration to reach.")) -> None:
    """Creates or migrates the tables of the configured store (TIDINGS_DATABASE_URL)."""
    from tidings import migrate
    from tidings.db import make_engine

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

    from tidings import migrate
    from tidings.app import create_app
    from tidings.config import get_settings
    from tidings.db import make_engine
    from tidings.dispatch.background import run_dispatcher_with

    settings = get_settings()
    migrate.upgrade(make_engine())
    application = create_app()
    if not no_worker:
        run_dispatcher_with(application, settings)
    uvicorn.run(application, host=host or settings.api_host, port=port or settings.api_port)
