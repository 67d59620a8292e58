"""`tidings demo ...`: the synthetic retailer."""

from __future__ import annotations

import typer

demo_app = typer.Typer(help="The demo retailer: generate it, import it, run the main job.")
