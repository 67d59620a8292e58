"""Command groups of the segments domain."""

from __future__ import annotations

import typer

segment_app = typer.Typer(help="Audiences written in the segment language.", no_args_is_help=True)
