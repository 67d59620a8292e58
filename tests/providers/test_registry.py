"""Providers are found by name: a built-in one, or a configured account of a known type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tidings.config import Settings
from tidings.providers.base import UnknownProvider, get_provider, register_provider_type
from tidings.providers.simulator import SimulatorProvider


def test_a_configured_account_is_built_by_its_type() -> None:
    built: list[tuple[str, Mapping[str, Any]]] = []

    def factory(name: str, account: Mapping[str, Any], settings: Settings) -> Any:
        built.append((name, account))
        return SimulatorProvider.from_settings(settings)

    register_provider_type("registry-test", factory)
    settings = Settings(provider_accounts={"shop-a": {"type": "registry-test", "key": "k"}})
    assert isinstance(get_provider("shop-a", settings), SimulatorProvider)
    assert built == [("shop-a", {"type": "registry-test", "key": "k"})]


def test_an_unknown_name_or_type_says_what_is_configured() -> None:
    settings = Settings(provider_accounts={"shop-b": {"type": "carrier-pigeon"}})
    with pytest.raises(UnknownProvider, match="known types"):
        get_provider("shop-b", settings)
    with pytest.raises(UnknownProvider, match="configured providers: shop-b, simulator"):
        get_provider("nobody", settings)
