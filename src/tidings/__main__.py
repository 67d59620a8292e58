"""Lets `python -m tidings` run the command line."""

from tidings.cli import app

app()
