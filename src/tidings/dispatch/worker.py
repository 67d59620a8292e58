"""The dispatcher: an asyncio loop that claims due messages and hands them to providers.

Each sender claims a batch with a lease, re-checks the send window (a message that would now
land at night waits for morning, or expires), marks what it will send `submitting` in a
committed transaction of its own, calls the provider under its rate limits, and records the
answers in bulk. A housekeeper polls receipts, reconciles what crashes left behind, runs
the periodic chores (`chores.py`), and in `once` mode ends the run when nothing is left to
send or to hear about. Store calls are synchronous and short. On PostgreSQL the senders' and
the receipts' store calls run on threads, each on its own connection, so the store's work
overlaps the providers' and each other's. SQLite has one writer, and they run on the loop:
a single store thread cost more in handing calls over than it gained in overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import Engine

from tidings import clock
from tidings.campaigns import rollout
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch import calls, claims, outcomes, receipts, service
from tidings.dispatch.chores import ChoreRunner
from tidings.dispatch.claims import ClaimedMessage
from tidings.dispatch.collector import fewer_collections
from tidings.dispatch.models import MessageState
from tidings.dispatch.reconcile import reconcile
from tidings.dispatch.sendwindow import DailyWindow, split_by_time
from tidings.dispatch.throttle import ProviderThrottle
from tidings.inbound import intents
from tidings.inbound import service as inbound
from tidings.providers.base import (
    InboundReply,
    OutgoingMessage,
    Receipt,
    ReceiptSource,
    ReplySource,
    SendResult,
    SmsProvider,
    UnknownProvider,
    get_provider,
)
from tidings.triggers import exits

T = TypeVar("T")
log = logging.getLogger(__name__)
IDLE_POLL = 0.2  # seconds between claims when nothing is due
HOUSEKEEPING_INTERVAL = 0.2  # seconds between receipt polls
UNKNOWN_PROVIDER_CODE = "unknown_provider"


@dataclass(slots=True)
class WorkerReport:
    """What one run of the worker did, by the state messages reached."""

    tally: outcomes.Tally = field(default_factory=outcomes.Tally)
    receipts: int = 0
    replies: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as JSON-ready numbers."""
        return {**self.tally.counts, "receipts": self.receipts, "replies": self.replies}


def worker_name() -> str:
    """A name that tells which process holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """One dispatcher process (or thread): its senders share its providers and limits."""

    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings,
        concurrency: int = 1,
        providers: dict[str, SmsProvider] | None = None,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.concurrency = max(1, concurrency)
        self.owner = owner or worker_name()
        self.providers: dict[str, SmsProvider] = dict(providers or {})
        self.throttles: dict[str, ProviderThrottle] = {}
        self.report = WorkerReport()
        self.send_window = DailyWindow.parse(settings.send_window)
        self.quiet_hours = DailyWindow.parse_optional(settings.quiet_hours)
        self.lease = settings.dispatch_lease_seconds
        self._stop = asyncio.Event()
        self._store_threads: ThreadPoolExecutor | None = None  # PostgreSQL's store calls
        # (provider, provider message id) of answers taken and not yet written: their
        # receipts wait, so that none is stored before the message it settles is submitted.
        self._unrecorded: set[tuple[str, str]] = set()
        self._held: list[Receipt] = []

    def stop(self) -> None:
        """Asks the worker to finish the batches in hand and return."""
        self._stop.set()

    async def run(self, *, once: bool = False) -> WorkerReport:
        """Sends until stopped, or in `once` mode until nothing is left to send or hear about."""
        with fewer_collections():
            return await self._run(once=once)

    async def _run(self, *, once: bool) -> WorkerReport:
        self._provider(self.settings.default_provider)
        await calls.open_connections(self.providers.values())
        if any(isinstance(provider, ReplySource) for provider in self.providers.values()):
            await asyncio.to_thread(intents.load_word_cutter)
        if self.engine.dialect.name != "sqlite":
            self._store_threads = ThreadPoolExecutor(
                self.concurrency + 1, thread_name_prefix="tidings-store"
            )
        chores = ChoreRunner(self.engine, self.settings, now=clock.now(), once=once)
        await self._reconcile()
        senders = [asyncio.create_task(self._sender()) for _ in range(self.concurrency)]
        try:
            await self._housekeeper(chores, once=once)
        finally:
            self._stop.set()
            await asyncio.gather(*senders)
            await chores.finish()
            await self._poll_receipts()
            await self._poll_replies()
            for throttle in self.throttles.values():
                await throttle.close()
            await calls.close_connections(self.providers.values())
            if self._store_threads is not None:
                self._store_threads.shutdown()
        return self.report

    async def _in_store(self, call: Callable[[], T]) -> T:
        """Runs a store call: on a store thread on PostgreSQL, inline on SQLite."""
        if self._store_threads is None:
            return call()
        return await asyncio.get_running_loop().run_in_executor(self._store_threads, call)

    def _provider(self, name: str) -> SmsProvider:
        if name not in self.providers:
            self.providers[name] = get_provider(name, self.settings)
        provider = self.providers[name]
        if name not in self.throttles:
            self.throttles[name] = ProviderThrottle(
                name,
                rate_per_second=provider.rate_per_second,
                max_concurrency=provider.max_concurrency,
                redis_url=self.settings.redis_url,
            )
        return provider

    async def _sender(self) -> None:
        while not self._stop.is_set():
            taken_at = clock.now()
            claimed = await self._in_store(partial(self._take, taken_at))
            if not claimed:
                await self._pause(IDLE_POLL)
                continue
            await self._send(claimed, taken_at)
            # A provider that answers at once never makes a sender wait: let the housekeeper
            # apply receipts and check rollout gates between batches, not only after the send.
            await asyncio.sleep(0)

    def _take(self, now: datetime) -> list[ClaimedMessage]:
        """Claims a batch and commits it, so each message is `submitting` before its call."""
        with session_scope(self.engine) as session:
            return claims.take_due(
                db_session=session,
                owner=self.owner,
                limit=self.settings.dispatch_batch_size,
                lease=self.lease,
                now=now,
            )

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _send(self, claimed: list[ClaimedMessage], taken_at: datetime) -> None:
        now = clock.now()
        ready, deferred, expired = split_by_time(
            claimed,
            now=now,
            send_window=self.send_window,
            quiet_hours=self.quiet_hours,
            default_timezone=self.settings.default_timezone,
        )
        if deferred or expired:
            # Back to the queue before anything was sent: for later, or to expire at once.
            await self._in_store(partial(self._hold, deferred, expired, now))
            self.report.tally.add("deferred", len(deferred))
            self.report.tally.add(MessageState.EXPIRED, len(expired))
        kept = await self._in_store(partial(self._without_exited, ready, now))
        self.report.tally.add(MessageState.CANCELLED, len(ready) - len(kept))
        by_provider: dict[str, list[ClaimedMessage]] = {}
        for message in kept:
            by_provider.setdefault(message.provider, []).append(message)
        for name, batch in by_provider.items():
            try:
                provider = self._provider(name)
            except UnknownProvider as error:
                self._fail_unknown_provider(batch, str(error))
                continue
            size = self.throttles[name].chunk_size(provider.max_batch)
            for start in range(0, len(batch), size):
                if self._stop.is_set():
                    self._put_back(batch[start:])
                    break
                await self._send_chunk(provider, batch[start : start + size], taken_at)

    def _hold(
        self, deferred: list[tuple[int, datetime]], expired: list[int], now: datetime
    ) -> None:
        """Puts back messages that may not go yet, and expires those that never may."""
        held: list[tuple[int, datetime | None]] = [*deferred, *((i, None) for i in expired)]
        with session_scope(self.engine) as session:
            claims.put_back(db_session=session, owner=self.owner, moves=held, now=now)
            outcomes.expire(db_session=session, ids=expired, now=now)

    def _without_exited(self, ready: list[ClaimedMessage], now: datetime) -> list[ClaimedMessage]:
        """Cancels trigger messages whose exit condition holds by now; returns the rest."""
        triggered = [(m.id, m.trigger_id, m.member_id) for m in ready if m.trigger_id is not None]
        if not triggered:
            return ready
        try:
            with session_scope(self.engine) as session:
                stopped = exits.exited_messages(session, claimed=triggered)  # type: ignore[arg-type]
                exits.cancel_exited(session, owner=self.owner, stopped=stopped, now=now)
        except Exception:
            # The rule was checked when the trigger was saved; a store hiccup sends as queued.
            log.exception("checking trigger exit conditions failed; sending as queued")
            return ready
        gone = {message_id for message_id, *_ in stopped}
        return [m for m in ready if m.id not in gone]

    def _put_back(self, batch: Sequence[ClaimedMessage]) -> None:
        with session_scope(self.engine) as session:
            moves = [(message.id, None) for message in batch]
            claims.put_back(db_session=session, owner=self.owner, moves=moves, now=clock.now())

    def _fail_unknown_provider(self, batch: Sequence[ClaimedMessage], reason: str) -> None:
        log.error("%s: failing %d messages", reason, len(batch))
        results = [SendResult.failed(m.id, UNKNOWN_PROVIDER_CODE, permanent=True) for m in batch]
        with session_scope(self.engine) as session:
            tally = outcomes.record_results(
                db_session=session, results=results, attempts={}, max_attempts=1, now=clock.now()
            )
        self.report.tally.merge(tally)

    async def _send_chunk(
        self, provider: SmsProvider, chunk: list[ClaimedMessage], taken_at: datetime
    ) -> None:
        """Sends messages taken (and committed as `submitting`) at `taken_at`."""
        throttle = self.throttles[provider.name]
        outgoing = [
            OutgoingMessage(m.id, m.phone, m.text, m.parts, m.kind, m.campaign_id) for m in chunk
        ]
        async with throttle.slot():
            await throttle.take_rate(len(outgoing))
            # The call must end well inside the lease, or a reconciler could ask the provider
            # about a message still on its way and send it again; when the store, the rate or
            # the chunks before this one took too much of the lease, the chunk goes back unsent.
            budget = self.lease / 2 - (clock.now() - taken_at).total_seconds()
            if budget <= 0:
                results: list[SendResult] | None = [
                    SendResult.retry(m.id, 0.0, "lease_too_short") for m in outgoing
                ]
            else:
                results = await calls.call_provider(provider, outgoing, timeout=budget)
        accepted = {
            (provider.name, r.provider_message_id) for r in results or () if r.provider_message_id
        }
        self._unrecorded |= accepted
        try:
            tally = await self._in_store(partial(self._record, provider, chunk, results))
        finally:
            self._unrecorded -= accepted
        self.report.tally.merge(tally)

    def _record(
        self, provider: SmsProvider, chunk: list[ClaimedMessage], results: list[SendResult] | None
    ) -> outcomes.Tally:
        """Writes a provider's answers, and lets go of the messages it gave none for."""
        # Messages without an answer (all of them when the call broke off, or those a
        # provider could not answer for) are left `submitting` and let go: reconciliation
        # settles them once the lease runs out.
        answered = {r.message_id for r in results or ()}
        unanswered = [m.id for m in chunk if m.id not in answered]
        now = clock.now()
        with session_scope(self.engine) as session:
            claims.abandon(db_session=session, owner=self.owner, ids=unanswered, now=now)
            if not results:
                return outcomes.Tally()
            tally = outcomes.record_results(
                db_session=session,
                results=results,
                attempts={m.id: m.attempts for m in chunk},
                max_attempts=self.settings.dispatch_max_attempts,
                now=now,
            )
            accepted = [r.provider_message_id for r in results if r.provider_message_id]
            receipts.attach_early_receipts(
                db_session=session,
                provider=provider.name,
                provider_message_ids=accepted,
                now=now,
            )
        return tally

    async def _poll_receipts(self) -> None:
        batch = [*self._held]
        for provider in list(self.providers.values()):
            if isinstance(provider, ReceiptSource):
                batch += await provider.poll_receipts()
        # A receipt can beat the answer of its message's provider to the store when that is
        # written on another thread: it waits for the next poll instead of going unmatched.
        if self._unrecorded:
            unrecorded = self._unrecorded
            self._held = [r for r in batch if (r.provider, r.provider_message_id) in unrecorded]
            ready = [r for r in batch if (r.provider, r.provider_message_id) not in unrecorded]
        else:
            self._held, ready = [], batch
        if ready:
            await self._in_store(partial(self._apply_receipts, ready))
            self.report.receipts += len(ready)

    def _apply_receipts(self, batch: list[Receipt]) -> None:
        with session_scope(self.engine) as session:
            receipts.apply_receipts(db_session=session, receipts=batch, now=clock.now())

    async def _poll_replies(self) -> None:
        """Stores the replies of providers that hand them over on their own connection."""
        for provider in list(self.providers.values()):
            if not isinstance(provider, ReplySource):
                continue
            batch = await provider.poll_replies()
            if batch:
                await self._in_store(partial(self._store_replies, batch))
                self.report.replies += len(batch)

    def _store_replies(self, batch: list[InboundReply]) -> None:
        with session_scope(self.engine) as session:
            inbound.store_replies(db_session=session, replies=batch, now=clock.now())

    async def _reconcile(self) -> bool:
        """Settles what crashes and late receipts left; True when it moved any message."""
        tally = await reconcile(
            engine=self.engine,
            providers=self.providers,
            now=clock.now(),
            receipt_timeout=self.settings.dispatch_receipt_timeout,
            owner=self.owner,
        )
        self.report.tally.merge(tally)
        return bool(tally.counts)

    async def _housekeeper(self, chores: ChoreRunner, *, once: bool) -> None:
        reconcile_every = max(0.5, self.lease / 2)
        last_reconcile = clock.now()
        while not self._stop.is_set():
            await self._pause(HOUSEKEEPING_INTERVAL)
            await self._poll_receipts()
            await self._poll_replies()
            now = clock.now()
            await chores.run_due(now)
            if (now - last_reconcile).total_seconds() >= reconcile_every:
                # Receipts that came in during the chores first: a provider is asked about
                # a message only when its receipt is really late.
                await self._poll_receipts()
                await self._reconcile()
                await self._in_store(partial(self._settle_stragglers, now))
                last_reconcile = now
            # A message whose receipt is overdue is no longer work left, yet only asking its
            # provider settles it (its receipt may have died with an earlier worker): ask
            # before the run ends, and go on while asking still moves messages.
            if once and self._nothing_left(now) and not await self._reconcile():
                return

    def _settle_stragglers(self, now: datetime) -> None:
        """Matches receipts that raced their message's answer, and completes the campaigns
        with nothing left to send."""
        since = now - timedelta(seconds=self.settings.dispatch_receipt_timeout)
        with session_scope(self.engine) as session:
            receipts.rematch_recent(db_session=session, since=since, now=now)
            service.complete_finished(db_session=session)

    def _nothing_left(self, now: datetime) -> bool:
        """True when no message is due, in flight or awaiting a receipt, and no rollout stage
        is about to be released."""
        timeout = self.settings.dispatch_receipt_timeout
        with session_scope(self.engine) as session:
            if claims.work_left(db_session=session, now=now, receipt_timeout=timeout):
                return False
            return not rollout.release_pending(db_session=session)
