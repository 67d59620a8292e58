"""The SmsProvider protocol every provider implements, its value types, and the registry."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tidings.config import Settings


class UnknownProvider(LookupError):
    """A message or campaign names a provider tidings does not know."""


class ProviderUnavailable(ConnectionError):
    """The provider could not be reached and nothing was handed over: safe to try again."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a provider needs to send one message; `id` doubles as the idempotency key."""

    id: int
    phone: str
    text: str
    parts: int = 1
    kind: str = "marketing"
    campaign_id: int | None = None


class Outcome(enum.StrEnum):
    """What a provider answered for one message of a batch."""

    ACCEPTED = "accepted"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendResult:
    """A provider's answer for one message: accepted, try again after a while, or failed."""

    message_id: int
    outcome: Outcome
    provider_message_id: str | None = None
    retry_after: float = 0.0  # seconds
    error_code: str | None = None
    permanent: bool = False

    @classmethod
    def accepted(cls, message_id: int, provider_message_id: str) -> SendResult:
        """The provider took the message and will report on it under `provider_message_id`."""
        return cls(message_id, Outcome.ACCEPTED, provider_message_id=provider_message_id)

    @classmethod
    def retry(cls, message_id: int, after: float, code: str) -> SendResult:
        """The provider is throttling or briefly failing: send again after `after` seconds."""
        return cls(message_id, Outcome.RETRY, retry_after=after, error_code=code)

    @classmethod
    def failed(cls, message_id: int, code: str, *, permanent: bool) -> SendResult:
        """The provider refused the message; a permanent refusal is never retried."""
        return cls(message_id, Outcome.FAILED, error_code=code, permanent=permanent)


class QueryStatus(enum.StrEnum):
    """What a provider's query API knows of a message."""

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A provider's record of a message it received (absent from the answer: never received)."""

    message_id: int
    provider_message_id: str
    status: QueryStatus
    error_code: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery report as a provider sends it, before it is matched to a message."""

    provider: str
    provider_message_id: str
    status: str  # delivered | failed | expired
    occurred_at: datetime
    error_code: str | None = None


@runtime_checkable
class SmsProvider(Protocol):
    """A way to hand messages to handsets. Implementations live one per module."""

    name: str
    counting_scheme: str  # how parts are counted: "gsm7-ucs2" (3GPP) or "chars-70-67"
    price_per_part_cents: int
    max_batch: int  # messages in one request
    rate_per_second: int  # messages per second tidings may send (0: no limit)
    max_concurrency: int  # requests in flight at once

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Hands `messages` over and answers a SendResult per message, in any order.

        A message left out of the answer is one whose fate the provider cannot tell (written
        to a connection that broke before the answer): the worker leaves it to reconciliation,
        which never sends it again.
        """
        ...


@runtime_checkable
class QueryableProvider(SmsProvider, Protocol):
    """A provider with a query API, so that a crash can be reconciled exactly."""

    async def query(self, message_ids: Sequence[int]) -> list[QueryResult]:
        """Returns what the provider knows of each message id it received; others are absent."""
        ...


@dataclass(frozen=True, slots=True)
class InboundReply:
    """A text a member sent back (an MO message), as a provider hands it over."""

    provider: str  # the account name it arrived on
    phone: str  # the member's number, E.164
    text: str
    received_at: datetime
    provider_message_id: str | None = None  # the provider's id of the reply, for dedupe
    recipient: str | None = None  # our number or extension the member wrote to


@runtime_checkable
class ReplySource(Protocol):
    """A provider whose replies are fetched or arrive on a connection (SMPP deliver_sm)."""

    async def poll_replies(self) -> list[InboundReply]:
        """Returns the replies that arrived since the last call."""
        ...


@runtime_checkable
class ReceiptSource(Protocol):
    """A provider whose receipts are fetched (rather than pushed to /hooks)."""

    async def poll_receipts(self) -> list[Receipt]:
        """Returns the receipts that arrived since the last call."""
        ...


ProviderFactory = Callable[["Settings"], SmsProvider]
AccountFactory = Callable[[str, Mapping[str, Any], "Settings"], SmsProvider]
_REGISTRY: dict[str, ProviderFactory] = {}
_ACCOUNT_TYPES: dict[str, AccountFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Makes a built-in provider available under `name` (the simulator)."""
    _REGISTRY[name] = factory


def register_provider_type(kind: str, factory: AccountFactory) -> None:
    """Makes a provider type (smpp, aliyun, tencent, twilio, http) configurable as accounts.

    The factory gets the account's name, its settings from `TIDINGS_PROVIDER_ACCOUNTS`
    and the process settings, and checks the account's keys itself.
    """
    _ACCOUNT_TYPES[kind] = factory


def get_provider(name: str, settings: Settings) -> SmsProvider:
    """Builds the provider called `name`: a configured account or a built-in provider."""
    import tidings.providers  # noqa: F401  (registers the shipped providers)

    account = settings.provider_accounts.get(name)
    if account is not None:
        kind = str(account.get("type", ""))
        account_factory = _ACCOUNT_TYPES.get(kind)
        if account_factory is None:
            types = ", ".join(sorted(_ACCOUNT_TYPES)) or "none"
            raise UnknownProvider(
                f"provider account {name!r} has type {kind!r}; known types: {types}"
            )
        return account_factory(name, account, settings)
    factory = _REGISTRY.get(name)
    if factory is None:
        known = ", ".join(sorted({*_REGISTRY, *settings.provider_accounts})) or "none"
        raise UnknownProvider(f"unknown SMS provider {name!r}; configured providers: {known}")
    return factory(settings)
