"""Command groups of the policy domain."""

from __future__ import annotations

import typer

policy_app = typer.Typer(
    help="Whether and when a member may receive a message.", no_args_is_help=True
)
