"""`tidings import orders|products`."""

from __future__ import annotations


def import_orders() -> None:
    """Imports order lines from a CSV file."""


def import_products() -> None:
    """Imports products from a CSV file."""
