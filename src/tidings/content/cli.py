"""Command groups of the content domain."""

from __future__ import annotations

import typer

message_app = typer.Typer(
    help="Check what a message says: encoding, length, cost, findings.", no_args_is_help=True
)
