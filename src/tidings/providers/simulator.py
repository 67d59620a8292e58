"""The embedded SMS simulator: a believable provider with handsets that write down what they got.

Every outcome (refusal, throttling, delivery, receipt delay, reply, click) is drawn from a hash
of the seed and the message id, so a run is reproducible and a crashed run can be reconciled
exactly: `query()` reads the inbox, the only record of what reached a handset.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tidings import clock
from tidings.providers.base import (
    InboundReply,
    Outcome,
    OutgoingMessage,
    QueryResult,
    QueryStatus,
    Receipt,
    SendResult,
    register_provider,
)

if TYPE_CHECKING:
    from tidings.config import Settings

NAME = "simulator"
THROTTLE_CODE = "0x58"  # SMPP ESME_RTHROTTLED, as a real SMSC answers
INVALID_NUMBER_CODE = "0x0B"  # SMPP ESME_RINVDSTADR
UNDELIVERED_CODE = "UNDELIV"
EXPIRED_CODE = "EXPIRED"
THROTTLE_RETRY_AFTER = 1.0  # seconds, what the simulated SMSC asks for
REPLY_TEXTS = ("好的，谢谢", "R", "什么时候结束？", "TD", "收到", "地址在哪里")
_FOUR_WORDS = struct.Struct(">4Q")  # a digest read as four big-endian 64-bit numbers
_WORD = float(2**64)


@lru_cache(maxsize=256)
def _json_text(text: str) -> str:
    """A message's text as JSON: a campaign's messages mostly share a few texts."""
    return json.dumps(text, ensure_ascii=False)


class SimulatorSettingsError(ValueError):
    """A simulator setting cannot be understood."""


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    """Something a simulated member did after a delivery: replied or clicked a link."""

    kind: str  # reply | click
    message_id: int
    provider_message_id: str
    phone: str
    occurred_at: datetime
    text: str | None = None


@dataclass(slots=True)
class _Pending:
    due: datetime
    message_id: int
    phone: str


def parse_delay_range(text: str) -> tuple[float, float]:
    """Parses 'MIN-MAX' seconds (or one number) into a pair."""
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise SimulatorSettingsError(
            f"receipt delay {text!r} is not MIN-MAX seconds, e.g. '1-20'"
        ) from None
    if pair[0] < 0 or pair[1] < pair[0]:
        raise SimulatorSettingsError(f"receipt delay {text!r}: MIN must be ≥ 0 and ≤ MAX")
    return pair


class SimulatorProvider:
    """An in-process SMS provider and the handsets behind it."""

    name = NAME
    counting_scheme = "gsm7-ucs2"

    def __init__(
        self,
        *,
        inbox: Path,
        seed: int = 7,
        latency: float = 0.0,  # seconds per request
        throughput: int = 0,  # messages per second accepted before throttling (0: any)
        delivery_rate: float = 0.97,
        failure_rate: float = 0.005,
        throttle_share: float = 0.0,
        receipt_delay: tuple[float, float] = (1.0, 20.0),  # seconds
        reply_rate: float = 0.002,
        click_rate: float = 0.02,
        price_per_part_cents: int = 5,
        max_batch: int = 500,
        rate_per_second: int = 0,
        max_concurrency: int = 4,
    ) -> None:
        self.inbox = inbox
        self.seed = seed
        self.latency = latency
        self.throughput = throughput
        self.delivery_rate = delivery_rate
        self.failure_rate = failure_rate
        self.throttle_share = throttle_share
        self.receipt_delay = receipt_delay
        self.reply_rate = reply_rate
        self.click_rate = click_rate
        self.price_per_part_cents = price_per_part_cents
        self.max_batch = max_batch
        self.rate_per_second = rate_per_second
        self.max_concurrency = max_concurrency
        # (due, message id, phone, its outcome draws)
        self._pending: list[tuple[datetime, int, str, tuple[float, float, float, float]]] = []
        self._events: list[SimulatedEvent] = []
        self._tries: dict[int, int] = {}
        self._second = 0
        self._taken_this_second = 0
        self._index: dict[int, tuple[str, datetime]] = {}
        self._index_offset = 0
        inbox.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulatorProvider:
        """Builds the simulator from the TIDINGS_SIMULATOR_* settings."""
        return cls(
            inbox=settings.simulator_inbox or settings.var_dir / "simulator-inbox.jsonl",
            seed=settings.simulator_seed,
            latency=settings.simulator_latency_ms / 1000,
            throughput=settings.simulator_throughput,
            delivery_rate=settings.simulator_delivery_rate,
            failure_rate=settings.simulator_failure_rate,
            throttle_share=settings.simulator_throttle_share,
            receipt_delay=parse_delay_range(settings.simulator_receipt_delay),
            reply_rate=settings.simulator_reply_rate,
            click_rate=settings.simulator_click_rate,
            price_per_part_cents=settings.price_per_part_cents,
            max_batch=settings.simulator_max_batch,
            rate_per_second=settings.simulator_rate_per_second,
            max_concurrency=settings.simulator_concurrency,
        )

    def _draws(self, message_id: int, purpose: str) -> tuple[float, float, float, float]:
        """Four numbers in [0, 1) fixed by the seed, the message and what they decide."""
        digest = hashlib.blake2b(
            f"{self.seed}:{message_id}:{purpose}".encode(), digest_size=32
        ).digest()
        a, b, c, d = _FOUR_WORDS.unpack(digest)
        return a / _WORD, b / _WORD, c / _WORD, d / _WORD

    def _draw(self, message_id: int, purpose: str) -> float:
        """A number in [0, 1) fixed by the seed, the message and what it decides."""
        return self._draws(message_id, purpose)[0]

    def provider_message_id(self, message_id: int) -> str:
        """The id the simulator gives a message it accepts."""
        return f"sim-{message_id}"

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Accepts, throttles or refuses each message; accepted ones reach the inbox first."""
        if self.latency:
            await asyncio.sleep(self.latency)
        now = clock.now()
        stamp = json.dumps(now.isoformat())
        low, high = self.receipt_delay
        results: list[SendResult] = []
        lines: list[str] = []
        for message in messages:
            draws = self._draws(message.id, "outcome")
            if self._throttled(message.id, now):
                results.append(SendResult.retry(message.id, THROTTLE_RETRY_AFTER, THROTTLE_CODE))
            elif draws[0] < self.failure_rate:
                results.append(SendResult.failed(message.id, INVALID_NUMBER_CODE, permanent=True))
            else:
                provider_id = self.provider_message_id(message.id)
                lines.append(self._inbox_line(message, provider_id, stamp))
                results.append(SendResult(message.id, Outcome.ACCEPTED, provider_id))
                due = now + timedelta(seconds=low + (high - low) * draws[1])
                heapq.heappush(self._pending, (due, message.id, message.phone, draws))
        self._append_to_inbox(lines)
        return results

    def _throttled(self, message_id: int, now: datetime) -> bool:
        if self.throttle_share:
            tries = self._tries.get(message_id, 0)
            if self._draw(message_id, f"throttle:{tries}") < self.throttle_share:
                self._tries[message_id] = tries + 1
                return True
        if not self.throughput:
            return False
        second = int(now.timestamp())
        if second != self._second:
            self._second, self._taken_this_second = second, 0
        if self._taken_this_second >= self.throughput:
            return True
        self._taken_this_second += 1
        return False

    def _inbox_line(self, message: OutgoingMessage, provider_id: str, stamp: str) -> str:
        """One JSON line; written by hand because it is the simulator's hot path."""
        campaign = "null" if message.campaign_id is None else int(message.campaign_id)
        return (
            f'{{"message_id": {int(message.id)}, "provider_message_id": "{provider_id}",'
            f' "phone": {json.dumps(message.phone)}, "text": {_json_text(message.text)},'
            f' "campaign_id": {campaign}, "received_at": {stamp}}}\n'
        )

    def _append_to_inbox(self, lines: list[str]) -> None:
        """Appends in one write to an O_APPEND file: the kernel has it before we acknowledge,
        so a worker killed after this call cannot lose it, and workers never interleave.

        A worker killed during its write leaves part of a line without its end (the kernel
        stops a write between pages for a fatal signal). That line is ended first, or the
        first line written after it would be joined to it and never read again.
        """
        if not lines:
            return
        data = "".join(lines).encode()
        descriptor = os.open(self.inbox, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
        finally:
            os.close(descriptor)

    def _receipt_due(self, message_id: int, accepted_at: datetime) -> datetime:
        low, high = self.receipt_delay
        delay = low + (high - low) * self._draws(message_id, "outcome")[1]
        return accepted_at + timedelta(seconds=delay)

    def fate(
        self, message_id: int, draws: tuple[float, float, float, float] | None = None
    ) -> tuple[QueryStatus, str | None]:
        """What finally happens to an accepted message: delivered, or why not; `draws` are
        its outcome draws when already at hand."""
        _, _, fate, why = draws or self._draws(message_id, "outcome")
        if fate < self.delivery_rate:
            return QueryStatus.DELIVERED, None
        if why < 0.2:
            return QueryStatus.EXPIRED, EXPIRED_CODE
        return QueryStatus.FAILED, UNDELIVERED_CODE

    async def poll_receipts(self) -> list[Receipt]:
        """Returns the receipts that have come due, and notes the replies and clicks."""
        now = clock.now()
        receipts: list[Receipt] = []
        while self._pending and self._pending[0][0] <= now:
            due, message_id, phone, draws = heapq.heappop(self._pending)
            status, code = self.fate(message_id, draws)
            provider_id = self.provider_message_id(message_id)
            receipts.append(Receipt(NAME, provider_id, status.value, due, code))
            if status is QueryStatus.DELIVERED:
                self._member_reacts(_Pending(due, message_id, phone), provider_id)
        return receipts

    def _member_reacts(self, pending: _Pending, provider_id: str) -> None:
        reply, pick_text, click, _ = self._draws(pending.message_id, "member")
        if reply < self.reply_rate:
            pick = int(pick_text * len(REPLY_TEXTS))
            self._events.append(
                SimulatedEvent(
                    "reply",
                    pending.message_id,
                    provider_id,
                    pending.phone,
                    pending.due + timedelta(minutes=3),
                    REPLY_TEXTS[pick],
                )
            )
        if click < self.click_rate:
            self._events.append(
                SimulatedEvent(
                    "click",
                    pending.message_id,
                    provider_id,
                    pending.phone,
                    pending.due + timedelta(minutes=1),
                )
            )

    def poll_events(self) -> list[SimulatedEvent]:
        """Returns the replies and clicks since the last call (for the inbound and tracking
        domains)."""
        events, self._events = self._events, []
        return events

    async def poll_replies(self) -> list[InboundReply]:
        """Returns the simulated members' replies since the last call; clicks stay for
        `poll_events`."""
        replies = [event for event in self._events if event.kind == "reply"]
        if not replies:
            return []
        self._events = [event for event in self._events if event.kind != "reply"]
        return [
            InboundReply(
                provider=self.name,
                phone=event.phone,
                text=event.text or "",
                received_at=event.occurred_at,
                provider_message_id=f"sim-reply-{event.message_id}",
            )
            for event in replies
        ]

    async def query(self, message_ids: Sequence[int]) -> list[QueryResult]:
        """Answers from the inbox what became of each message id; unknown ids are absent."""
        self._read_new_inbox_lines()
        now = clock.now()
        results = []
        for message_id in message_ids:
            found = self._index.get(message_id)
            if found is None:
                continue
            provider_id, received_at = found
            due = self._receipt_due(message_id, received_at)
            status, code = self.fate(message_id) if due <= now else (QueryStatus.SUBMITTED, None)
            results.append(QueryResult(message_id, provider_id, status, code, due))
        return results

    def _read_new_inbox_lines(self) -> None:
        """Indexes the inbox lines written since the last read, by any process."""
        if not self.inbox.exists():
            return
        with self.inbox.open("rb") as handle:
            handle.seek(self._index_offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._index_offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: that handset got nothing readable
            received_at = datetime.fromisoformat(record["received_at"])
            self._index.setdefault(
                int(record["message_id"]), (record["provider_message_id"], received_at)
            )


register_provider(NAME, SimulatorProvider.from_settings)
