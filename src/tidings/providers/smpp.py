"""The SMPP 3.4 provider: messages go out as submit_sm over one or more transceiver binds to
an SMSC or an aggregator, and receipts and replies come back as deliver_sm on the same binds.

A message is accepted under the message_id of its first part (a long message goes out in
parts with a UDH, each part with its own id; receipts for the later parts are set aside).
Throttling answers put the message back for later and slow the bind down. A message written
to a bind that broke before the SMSC answered is left out of the results: nobody knows if
the SMSC took it, so reconciliation marks it `unknown` and it is never sent twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import phonenumbers
import smpp34
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from tidings import clock
from tidings.providers.base import (
    InboundReply,
    OutgoingMessage,
    ProviderUnavailable,
    Receipt,
    SendResult,
    register_provider_type,
)
from tidings.providers.smpp_bind import (
    BUSY,
    THROTTLING,
    UNAVAILABLE,
    Bind,
    BindSettings,
    NotHandedOver,
    OutcomeUnknown,
    SubmitAnswer,
    SubmitRate,
)
from tidings.providers.smpp_text import encode_message, is_receipt, read_receipt, read_reply

if TYPE_CHECKING:
    from tidings.config import Settings

log = logging.getLogger(__name__)
TYPE = "smpp"
TRANSIENT = frozenset({0x08, 0x64})  # ESME_RSYSERR, ESME_RX_T_APPN: try again later
TRANSIENT_RETRY_AFTER = 5.0  # seconds before a message refused for a passing reason goes again
BIND_POLL = 0.05  # seconds between looks for a bind that is up
INTERNATIONAL = 1  # TON and NPI (E.164) of member numbers
LATER_PARTS_KEPT = 100_000  # ids of later parts whose receipts are set aside, newest kept
LEASE_SHARE = 0.4  # of the dispatch lease a batch may take at most, all waits included


@dataclass(frozen=True, slots=True)
class NotSent:
    """A message that never left: safe to send again. `code` says why."""

    code: str  # unavailable | busy


class SmppAccountError(ValueError):
    """An SMPP account in TIDINGS_PROVIDER_ACCOUNTS cannot be used as written."""


class SmppAccount(BaseModel):
    """One SMPP account's keys, as written in TIDINGS_PROVIDER_ACCOUNTS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["smpp"] = "smpp"
    host: str
    port: int = Field(2775, ge=1, le=65535)
    system_id: str = Field(max_length=15)
    password: SecretStr = Field(max_length=8)
    system_type: str = Field("", max_length=12)
    source_addr: str = Field(max_length=20)
    source_ton: int | None = Field(None, ge=0, le=6)  # default: 5 for a name, else 0
    source_npi: int | None = Field(None, ge=0, le=18)  # default: 0 for a name, else 1
    binds: int = Field(1, ge=1, le=16)
    window: int = Field(10, ge=1, le=1000)  # submits outstanding per bind
    rate_per_second: int = Field(0, ge=0)  # submit_sm per second, all binds (0: no limit)
    max_batch: int = Field(500, ge=1)
    price_per_part_cents: int | None = Field(None, ge=0)
    registered_delivery: bool = True
    throttle_pause: float = Field(1.0, ge=0)  # seconds a bind waits after a throttling answer
    connect_timeout: float = Field(5.0, gt=0)  # seconds
    response_timeout: float = Field(8.0, gt=0)  # seconds for a submit_sm_resp
    send_timeout: float = Field(5.0, gt=0)  # seconds a batch waits for a bind before giving up
    region: str | None = None  # region of reply numbers without a country code

    @classmethod
    def parse(cls, name: str, keys: Mapping[str, Any]) -> SmppAccount:
        """Reads an account, with errors that name the key and never echo a value."""
        try:
            return cls.model_validate(dict(keys))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
                for problem in error.errors(include_input=False, include_url=False)
            )
            raise SmppAccountError(f"SMPP account {name!r}: {problems}") from None


class SmppProvider:
    """An SMPP account: its binds, and what came back on them since the last poll."""

    counting_scheme = "gsm7-ucs2"

    def __init__(
        self,
        name: str,
        account: SmppAccount,
        *,
        price_per_part_cents: int,
        region: str,
        lease: float = 30.0,  # seconds: the dispatch lease, which a batch must end well within
    ):
        self.name = name
        self.account = account
        self.send_timeout, self.response_timeout = _fit_to_lease(account, lease)
        self.price_per_part_cents = price_per_part_cents
        self.max_batch = account.max_batch
        self.rate_per_second = account.rate_per_second
        self.max_concurrency = account.binds + 1  # one batch more than binds keeps them busy
        self.region = account.region or region
        self._source_ton, self._source_npi = _source_numbering(account)
        self._binds: list[Bind] = []
        self._closed = False
        self._references = itertools.cycle(range(256))  # concatenation reference numbers
        self._later_parts: OrderedDict[str, None] = OrderedDict()
        self._receipts: list[Receipt] = []
        self._replies: list[InboundReply] = []
        self._reply_parts: dict[tuple[str, int, int], dict[int, str]] = {}
        self._rate = SubmitRate(account.rate_per_second) if account.rate_per_second else None

    def __repr__(self) -> str:
        return f"SmppProvider({self.name!r}, {self.account.host}:{self.account.port})"

    async def open(self) -> None:
        """Starts the binds (once); they connect and reconnect in the background."""
        if self._binds or self._closed:
            return
        a = self.account
        settings = BindSettings(
            host=a.host,
            port=a.port,
            system_id=a.system_id,
            password=a.password.get_secret_value(),
            system_type=a.system_type,
            window=a.window,
            connect_timeout=a.connect_timeout,
            response_timeout=self.response_timeout,
            throttle_pause=a.throttle_pause,
        )
        self._binds = [
            Bind(f"{self.name}#{i + 1}", settings, self._deliver) for i in range(a.binds)
        ]
        for bind in self._binds:
            bind.start()

    async def aclose(self) -> None:
        """Unbinds every bind; what came back before stays to be polled."""
        self._closed = True
        binds, self._binds = self._binds, []
        await asyncio.gather(*(bind.close() for bind in binds))

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Submits each message over the binds, within their windows and the account's rate.

        Answers every message but those whose outcome is unknown (written, then the bind
        broke); raises ProviderUnavailable when no bind came up and nothing was written.
        """
        await self.open()
        deadline = time.monotonic() + self.send_timeout
        waiting = deque(messages)
        outcomes: dict[int, SendResult | NotSent | None] = {}

        async def lane() -> None:
            while waiting:
                message = waiting.popleft()
                if time.monotonic() >= deadline:
                    outcomes[message.id] = NotSent(BUSY)
                else:
                    outcomes[message.id] = await self._send_one(message, deadline)

        lanes = min(len(messages), self.account.binds * self.account.window)
        await asyncio.gather(*(lane() for _ in range(lanes)))
        unavailable = NotSent(UNAVAILABLE)
        if messages and all(outcome == unavailable for outcome in outcomes.values()):
            raise ProviderUnavailable(f"SMPP account {self.name!r}: no bind is up")
        results: list[SendResult] = []
        for message_id, outcome in outcomes.items():
            if isinstance(outcome, NotSent):
                results.append(SendResult.retry(message_id, 0.0, outcome.code))
            elif isinstance(outcome, SendResult):
                results.append(outcome)
        return results

    async def _send_one(
        self, message: OutgoingMessage, deadline: float
    ) -> SendResult | NotSent | None:
        """Sends a message's parts in order: a SendResult, NotSent, or None (unknown)."""
        encoded = encode_message(message.text, next(self._references))
        fields: dict[str, object] = {
            "destination_addr": message.phone.removeprefix("+"),
            "source_addr": self.account.source_addr,
            "source_addr_ton": self._source_ton,
            "source_addr_npi": self._source_npi,
            "dest_addr_ton": INTERNATIONAL,
            "dest_addr_npi": INTERNATIONAL,
            "esm_class": encoded.esm_class,
            "data_coding": encoded.data_coding,
            "registered_delivery": 1 if self.account.registered_delivery else 0,
        }
        ids: list[str] = []
        for short_message in encoded.parts:
            part = {**fields, "short_message": short_message}
            answer = await self._submit_part(part, deadline, ids)
            if not isinstance(answer, SubmitAnswer):
                return answer
            if answer.status:
                return self._refused(message.id, answer.status, first=not ids)
            ids.append(answer.message_id or "")
            if len(ids) > 1 and self.account.registered_delivery:
                # Noted at once: its receipt may come before the next part's answer.
                self._later_parts[ids[-1]] = None
                if len(self._later_parts) > LATER_PARTS_KEPT:
                    self._later_parts.popitem(last=False)
        return SendResult.accepted(message.id, ids[0])

    async def _submit_part(
        self, fields: dict[str, object], deadline: float, sent: list[str]
    ) -> SubmitAnswer | NotSent | None:
        """Submits one part. The first part gives up at the deadline (the message goes back);
        a later part keeps trying through throttling and reconnects a while longer, since the
        member may already have the first; when it cannot, the outcome is unknown (None)."""
        give_up = deadline if not sent else deadline + self.response_timeout
        while True:
            try:
                bind = await self._bind_up(give_up)
                answer = await bind.submit(give_up=give_up, pace=self._pace, **fields)
            except NotHandedOver as refusal:
                if time.monotonic() < give_up:
                    continue
                return NotSent(refusal.code) if not sent else None
            except OutcomeUnknown as error:
                log.warning("SMPP account %s: outcome unknown (%s)", self.name, error)
                return None
            retryable = answer.status in THROTTLING or answer.status in TRANSIENT
            if not sent or not retryable:
                return answer
            if time.monotonic() >= give_up:
                return None

    def _refused(self, message_id: int, status: int, *, first: bool) -> SendResult:
        code = f"0x{status:02X}"
        if first and status in THROTTLING:
            return SendResult.retry(message_id, self.account.throttle_pause, code)
        if first and status in TRANSIENT:
            return SendResult.retry(message_id, TRANSIENT_RETRY_AFTER, code)
        return SendResult.failed(message_id, code, permanent=True)

    async def _bind_up(self, give_up: float) -> Bind:
        """The bind that is up with the most room in its window; waits for one until give_up."""
        while True:
            up = [bind for bind in self._binds if bind.up.is_set()]
            if up:
                return max(up, key=lambda bind: bind.window.free())
            if time.monotonic() >= give_up:
                raise NotHandedOver(UNAVAILABLE)
            await asyncio.sleep(BIND_POLL)

    async def _pace(self, give_up: float) -> None:
        """Holds a submit_sm until it fits the account's rate over the last second."""
        if self._rate is not None:
            await self._rate.take(give_up)

    def _deliver(self, event: smpp34.DeliverSmEvent) -> None:
        """Takes a deliver_sm off a bind: a receipt, or (a part of) a member's reply."""
        if is_receipt(event.esm_class):
            read = read_receipt(event.short_message, [(t.tag, t.value) for t in event.tlvs])
            if read is None or read.status is None:
                return  # no id, or not final yet (ACCEPTD, ENROUTE)
            if read.provider_message_id in self._later_parts:
                del self._later_parts[read.provider_message_id]
                return  # the first part's receipt speaks for the message
            at = clock.now()
            self._receipts.append(
                Receipt(self.name, read.provider_message_id, read.status, at, read.error)
            )
            return
        part = read_reply(
            event.short_message, data_coding=event.data_coding, esm_class=event.esm_class
        )
        phone = self._member_phone(event.source_addr, event.source_addr_ton)
        text = part.text
        if part.reference is not None and part.total > 1:
            key = (phone, part.reference, part.total)
            pieces = self._reply_parts.setdefault(key, {})
            pieces[part.number] = part.text
            if len(pieces) < part.total:
                return
            del self._reply_parts[key]
            text = "".join(pieces[number] for number in sorted(pieces))
        recipient = event.destination_addr or None
        self._replies.append(InboundReply(self.name, phone, text, clock.now(), None, recipient))

    def _member_phone(self, address: str, ton: int) -> str:
        """A reply's sender in E.164, read by its type of number."""
        digits = address.removeprefix("+")
        if ton == INTERNATIONAL or address.startswith("+"):
            return f"+{digits}"
        try:
            number = phonenumbers.parse(digits, self.region)
        except phonenumbers.NumberParseException:
            return address
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    async def poll_receipts(self) -> list[Receipt]:
        """Returns the receipts that arrived since the last call."""
        await self.open()
        receipts, self._receipts = self._receipts, []
        return receipts

    async def poll_replies(self) -> list[InboundReply]:
        """Returns the replies that arrived since the last call."""
        await self.open()
        replies, self._replies = self._replies, []
        return replies


def _fit_to_lease(account: SmppAccount, lease: float) -> tuple[float, float]:
    """The send and response timeouts, shortened if need be so that a batch (the send
    timeout, then a later part's extra time and its answer) ends well within the lease."""
    longest = account.send_timeout + 2 * account.response_timeout
    scale = min(1.0, LEASE_SHARE * lease / longest)
    return account.send_timeout * scale, account.response_timeout * scale


def _source_numbering(account: SmppAccount) -> tuple[int, int]:
    named = not account.source_addr.lstrip("+").isdigit()
    ton = account.source_ton if account.source_ton is not None else (5 if named else 0)
    npi = account.source_npi if account.source_npi is not None else (0 if named else 1)
    return ton, npi


def build_smpp_provider(name: str, keys: Mapping[str, Any], settings: Settings) -> SmppProvider:
    """Builds the provider of an SMPP account from its keys."""
    account = SmppAccount.parse(name, keys)
    price = account.price_per_part_cents
    if price is None:
        price = settings.price_per_part_cents
    return SmppProvider(
        name,
        account,
        price_per_part_cents=price,
        region=settings.default_region,
        lease=settings.dispatch_lease_seconds,
    )


register_provider_type(TYPE, build_smpp_provider)
