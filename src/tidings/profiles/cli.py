"""Command groups of the profiles domain."""

from __future__ import annotations

import typer

profiles_app = typer.Typer(
    help="Per-member profiles: RFM, tiers, tags, predictions.", no_args_is_help=True
)

model_app = typer.Typer(
    help="Fit the BG/NBD and Gamma-Gamma models of purchasing.", no_args_is_help=True
)
