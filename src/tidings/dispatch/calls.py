"""How the worker talks to providers: connections opened and closed with the worker, and
calls with a few quick retries whose outcome is known or plainly unknown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import stamina

from tidings.providers.base import OutgoingMessage, ProviderUnavailable, SendResult, SmsProvider

log = logging.getLogger(__name__)


@runtime_checkable
class ConnectedProvider(Protocol):
    """A provider that holds connections (SMPP binds): opened when the worker starts, so
    receipts and replies flow before anything is sent, and closed when it stops."""

    async def open(self) -> None:
        """Starts connecting; returns without waiting for the connections to come up."""
        ...

    async def aclose(self) -> None:
        """Closes the connections."""
        ...


async def open_connections(providers: Iterable[SmsProvider]) -> None:
    """Starts connecting the providers that hold connections."""
    for provider in providers:
        if isinstance(provider, ConnectedProvider):
            await provider.open()


async def close_connections(providers: Iterable[SmsProvider]) -> None:
    """Closes the connections of the providers that hold them."""
    for provider in providers:
        if isinstance(provider, ConnectedProvider):
            await provider.aclose()


async def call_provider(
    provider: SmsProvider, outgoing: list[OutgoingMessage], *, timeout: float
) -> list[SendResult] | None:
    """Calls the provider; None when the outcome cannot be known (the call broke off)."""
    try:
        # Three quick tries: a refused connection is usually back within a second, and
        # nothing was handed over, so trying again cannot send twice. Longer outages go
        # back to the queue with backoff.
        async for attempt in stamina.retry_context(
            on=ProviderUnavailable, attempts=3, wait_initial=0.1, wait_max=1.0
        ):
            # In this task, not a new one: nothing else runs between the rate's grant
            # and the request, so the provider sees the rate the window allowed.
            with attempt:
                async with asyncio.timeout(timeout):
                    return await provider.send_batch(outgoing)
    except ProviderUnavailable:
        return [SendResult.retry(m.id, 0.0, "unavailable") for m in outgoing]
    except Exception:
        log.exception("provider %s: outcome of %d messages unknown", provider.name, len(outgoing))
        return None
    return None
