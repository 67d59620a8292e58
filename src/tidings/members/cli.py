"""`tidings import members|stores` and `tidings member ...`."""

from __future__ import annotations

import typer

member_app = typer.Typer(help="Look up members.", no_args_is_help=True)


def import_members() -> None:
    """Imports members from a CSV file."""


def import_stores() -> None:
    """Imports stores from a CSV file."""
