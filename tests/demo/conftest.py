"""Demo retailers generated once per test session, clean and dirty, from one seed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tidings.demo.generate import RetailerSpec, generate_retailer

END = date(2025, 6, 30)  # the last day of orders
SEED = 11


@pytest.fixture(scope="session")
def retailer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean chain of 3,000 members over a year."""
    directory = tmp_path_factory.mktemp("retailer")
    spec = RetailerSpec(members=3_000, months=12, seed=SEED, end=END)
    generate_retailer(spec=spec, directory=directory)
    return directory


@pytest.fixture(scope="session")
def dirty_retailer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same chain as `retailer`, with 3% of its rows messed up."""
    directory = tmp_path_factory.mktemp("dirty")
    spec = RetailerSpec(members=3_000, months=12, seed=SEED, end=END, dirty=0.03)
    generate_retailer(spec=spec, directory=directory)
    return directory
