"""What HTTP providers share: account settings with secrets, the AccountProvider base that
holds an account and its connections, the request helper that sorts answers into
SendResults, and the shape of a callback (receipts, replies, the acknowledgement).

Callbacks arrive at `/hooks/{type}/{account}`; the provider checks the signature or the
account's secret and turns the body into Receipt and InboundReply objects. A request that
fails the check or cannot be read raises CallbackRejected and changes nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Protocol,
    Self,
    TypeVar,
    cast,
    runtime_checkable,
)
from zoneinfo import ZoneInfo

import httpx
import phonenumbers
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from tidings.providers.base import InboundReply, ProviderUnavailable, Receipt, SendResult

if TYPE_CHECKING:
    from tidings.config import Settings

REQUEST_TIMEOUT = 10.0  # seconds for one provider request, connection included
SERVER_ERROR_RETRY = 5.0  # seconds before a message refused by a 5xx is tried again
THROTTLE_RETRY = 1.0  # seconds before a throttled message is tried again, unless told
CHINA = ZoneInfo("Asia/Shanghai")  # Aliyun and Tencent write local times without a zone

Account = TypeVar("Account", bound="AccountSettings")


class ProviderAccountError(ValueError):
    """A provider account in TIDINGS_PROVIDER_ACCOUNTS is missing a key or has a wrong one."""


# A request of a batch: the ids of the messages it carries and the call that sends them.
Request = tuple[list[int], Callable[[], Awaitable[list[SendResult]]]]


class CallbackRejected(Exception):
    """A callback request is unsigned, wrongly signed or unreadable: answered 4xx, nothing kept."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A callback as it reached /hooks: what a provider needs to verify and read it."""

    method: str
    url: str  # the full URL the provider called, query included
    headers: Mapping[str, str]  # names in lower case
    query: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class CallbackResult:
    """What a callback carried, and the acknowledgement the provider expects."""

    receipts: list[Receipt] = field(default_factory=list)
    replies: list[InboundReply] = field(default_factory=list)
    body: str = ""
    media_type: str = "application/json"


@runtime_checkable
class CallbackHandler(Protocol):
    """A provider whose receipts and replies are pushed to /hooks."""

    def handle_callback(self, request: CallbackRequest) -> CallbackResult:
        """Verifies `request` and reads it, or raises CallbackRejected."""
        ...


class AccountSettings(BaseModel):
    """Keys every HTTP provider account accepts; each type adds its own."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: str
    rate_per_second: int = 0  # messages per second tidings may send (0: no limit)
    max_concurrency: int = 4  # requests in flight at once
    price_per_part_cents: int | None = None  # default: TIDINGS_PRICE_PER_PART_CENTS
    callback_token: SecretStr | None = None  # the secret in the callback URL (?token=...)


def parse_account(
    model: type[Account], name: str, account: Mapping[str, Any], settings: Settings
) -> tuple[Account, int]:
    """Reads an account's keys into `model` and returns it with its price per part.

    Errors name the key and the problem, never the value: it may be a secret.
    """
    try:
        parsed = model.model_validate(dict(account))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors(include_input=False)
        )
        raise ProviderAccountError(f"provider account {name!r}: {problems}") from None
    price = parsed.price_per_part_cents
    return parsed, settings.price_per_part_cents if price is None else price


def check_token(request: CallbackRequest, token: SecretStr | None, account: str) -> None:
    """Accepts the request only when it carries the account's callback token."""
    if token is None:
        raise CallbackRejected(
            403,
            f"account {account!r} has no callback_token; set one and put it in the callback"
            " URL as ?token=...",
        )
    given = request.query.get("token") or request.headers.get("x-tidings-token", "")
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise CallbackRejected(401, "the callback token is missing or wrong")


def json_body(request: CallbackRequest) -> Any:
    """The request's JSON body, or a 400 that says it is not JSON."""
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise CallbackRejected(400, "the body is not JSON") from None


def items_of(payload: Any) -> list[dict[str, Any]]:
    """The objects of a batch callback: a JSON array of objects, or one object."""
    items = payload if isinstance(payload, list) else [payload]
    if not items or not all(isinstance(item, dict) for item in items):
        raise CallbackRejected(400, "expected a JSON object or an array of objects")
    return items


def field_of(item: Mapping[str, Any], key: str) -> str:
    """A required text field of a callback item, or a 400 naming it."""
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CallbackRejected(400, f"a callback item has no {key!r}")
    return str(value)


def local_time(text: str, zone: ZoneInfo = CHINA) -> datetime:
    """Reads 'YYYY-MM-DD HH:MM:SS' (or 'YYYYMMDDHHMMSS') written in `zone`."""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=zone).astimezone(UTC)
        except ValueError:
            continue
    raise CallbackRejected(400, f"time {text!r} is not 'YYYY-MM-DD HH:MM:SS'")


def e164(number: str, region: str = "CN") -> str:
    """A callback's phone number as E.164; a 400 when it is no number at all."""
    try:
        parsed = phonenumbers.parse(number, None if number.startswith("+") else region)
    except phonenumbers.NumberParseException:
        raise CallbackRejected(400, f"{number!r} is not a phone number") from None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def national(phone: str) -> str:
    """A mainland number without +86 (as Chinese providers write it); others as digits."""
    return phone[3:] if phone.startswith("+86") else phone.lstrip("+")


class HttpClients:
    """One httpx client per event loop: a provider outlives the loop of one worker run."""

    def __init__(self) -> None:
        self._clients: dict[int, httpx.AsyncClient] = {}

    def get(self) -> httpx.AsyncClient:
        """The client of the running loop, created on first use."""
        key = id(asyncio.get_running_loop())
        client = self._clients.get(key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
            self._clients = {key: client}  # a loop that ended took its connections with it
        return client

    async def aclose(self) -> None:
        """Closes the running loop's client, if it has one."""
        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.aclose()


class AccountProvider(Generic[Account]):
    """What every HTTP provider holds: its account's name and settings, its price and pace,
    and its connections, made on first use and closed when the worker stops. A subclass
    names its settings model and the key its repr shows; its module keeps the wire format."""

    account_model: ClassVar[type[AccountSettings]]
    shown_key: ClassVar[str]  # the account key repr shows beside the name; never a secret

    def __init__(self, name: str, account: Account, price_per_part_cents: int) -> None:
        self.name = name
        self.account = account
        self.price_per_part_cents = price_per_part_cents
        self.rate_per_second = account.rate_per_second
        self.max_concurrency = account.max_concurrency
        self._clients = HttpClients()

    def __repr__(self) -> str:
        shown = getattr(self.account, self.shown_key)
        return f"{type(self).__name__}(name={self.name!r}, {self.shown_key}={shown!r})"

    @classmethod
    def from_account(cls, name: str, account: Mapping[str, Any], settings: Settings) -> Self:
        """Builds the provider of account `name` from its TIDINGS_PROVIDER_ACCOUNTS entry."""
        parsed, price = parse_account(cls.account_model, name, account, settings)
        return cls(name, cast(Account, parsed), price)

    async def open(self) -> None:
        """Nothing to open ahead: the first request connects."""

    async def aclose(self) -> None:
        """Closes the connections of the running loop."""
        await self._clients.aclose()


async def post(client: httpx.AsyncClient, url: str, **options: Any) -> httpx.Response:
    """POSTs; a refused connection means nothing was handed over: ProviderUnavailable."""
    try:
        return await client.post(url, **options)
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise ProviderUnavailable(f"cannot reach {url}: {type(error).__name__}") from None


def retry_after(response: httpx.Response, default: float = THROTTLE_RETRY) -> float:
    """Seconds the provider asked us to wait (Retry-After), or `default`."""
    try:
        return max(0.0, float(response.headers.get("retry-after", default)))
    except ValueError:
        return default


def all_retry(ids: Sequence[int], after: float, code: str) -> list[SendResult]:
    """The same 'try again later' answer for every message of a request."""
    return [SendResult.retry(message_id, after, code) for message_id in ids]


def all_failed(ids: Sequence[int], code: str, *, permanent: bool) -> list[SendResult]:
    """The same refusal for every message of a request."""
    return [SendResult.failed(message_id, code, permanent=permanent) for message_id in ids]


async def run_requests(
    jobs: Sequence[Request],
    *,
    concurrency: int = 8,
) -> list[SendResult]:
    """Runs a batch's requests, a few at a time. A request that could not reach the provider
    handed nothing over: its messages are retried. When none could, ProviderUnavailable is
    raised, so the worker knows the whole batch is untouched."""
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Callable[[], Awaitable[list[SendResult]]]) -> list[SendResult]:
        async with gate:
            return await job()

    answers = await asyncio.gather(*(run(job) for _, job in jobs), return_exceptions=True)
    unreachable = [a for a in answers if isinstance(a, ProviderUnavailable)]
    if jobs and len(unreachable) == len(jobs):
        raise unreachable[0]
    results: list[SendResult] = []
    for (ids, _), answer in zip(jobs, answers, strict=True):
        if isinstance(answer, ProviderUnavailable):
            results += all_retry(ids, THROTTLE_RETRY, "unavailable")
        elif isinstance(answer, BaseException):
            # A request whose outcome is unknown (a timeout): the caller must not guess.
            raise answer
        else:
            results += answer
    return results
