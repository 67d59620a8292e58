"""The dispatcher: an asyncio loop that claims due messages and hands them to providers.

Each sender claims a batch with a lease, re-checks the send window (a message that would now
land at night waits for morning, or expires), marks what it will send `submitting` in a
committed transaction of its own, calls the provider under its rate limits, and records the
answers in bulk. A housekeeper polls receipts, reconciles what crashes left behind, and in
`once` mode ends the run when nothing is left to send or to hear about. Store calls are
synchronous and short; provider calls are what overlaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import stamina
from sqlalchemy import Engine, and_, func, or_, select

from tidings import clock
from tidings.campaigns import followups, recurring, rollout
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch import claims, outcomes, receipts, service
from tidings.dispatch.claims import ClaimedMessage
from tidings.dispatch.models import Message, MessageKind, MessageState
from tidings.dispatch.reconcile import reconcile
from tidings.dispatch.sendwindow import DailyWindow, next_allowed
from tidings.dispatch.throttle import ProviderThrottle
from tidings.inbound import service as inbound
from tidings.inbound import tickets
from tidings.loyalty import coupons
from tidings.loyalty import service as points
from tidings.notifications import callbacks
from tidings.providers.base import (
    OutgoingMessage,
    ProviderUnavailable,
    ReceiptSource,
    ReplySource,
    SendResult,
    SmsProvider,
    UnknownProvider,
    get_provider,
)
from tidings.reports import health
from tidings.tracking.credits import attribute_orders
from tidings.triggers import exits
from tidings.triggers.scheduler import due, scheduled_pass

log = logging.getLogger(__name__)
IDLE_POLL = 0.2  # seconds between claims when nothing is due
HOUSEKEEPING_INTERVAL = 0.2  # seconds between receipt polls
ROLLOUT_INTERVAL = 1.0  # seconds between checks of campaigns' rollout gates
BREACH_INTERVAL = 30.0  # seconds between flags of tickets past their first-response deadline
CALLBACK_INTERVAL = 1.0  # seconds between passes over API messages' status callbacks
POINTS_EXPIRY_INTERVAL = 86_400.0  # seconds between write-offs of expired points (daily)
LOYALTY_UPKEEP_INTERVAL = 3_600.0  # seconds between points catch-ups and coupon voids (hourly)
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
        self._trigger_pass: asyncio.Task[None] | None = None  # the scheduler's latest pass
        self._callback_pass: asyncio.Task[None] | None = None  # status callbacks being posted

    def stop(self) -> None:
        """Asks the worker to finish the batches in hand and return."""
        self._stop.set()

    async def run(self, *, once: bool = False) -> WorkerReport:
        """Sends until stopped, or in `once` mode until nothing is left to send or hear about."""
        self._provider(self.settings.default_provider)
        for provider in self.providers.values():
            if isinstance(provider, ConnectedProvider):
                await provider.open()
        await self._reconcile()
        senders = [asyncio.create_task(self._sender()) for _ in range(self.concurrency)]
        try:
            await self._housekeeper(once=once)
        finally:
            self._stop.set()
            await asyncio.gather(*senders)
            if self._callback_pass is not None:
                await self._callback_pass
            await self._poll_receipts()
            await self._poll_replies()
            for throttle in self.throttles.values():
                await throttle.close()
            for provider in self.providers.values():
                if isinstance(provider, ConnectedProvider):
                    await provider.aclose()
        return self.report

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
            with session_scope(self.engine) as session:
                claimed = claims.take_due(
                    db_session=session,
                    owner=self.owner,
                    limit=self.settings.dispatch_batch_size,
                    lease=self.lease,
                    now=taken_at,
                )
            if not claimed:
                await self._pause(IDLE_POLL)
                continue
            await self._send(claimed, taken_at)
            # A provider that answers at once never makes a sender wait: let the housekeeper
            # apply receipts and check rollout gates between batches, not only after the send.
            await asyncio.sleep(0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _sort_by_time(
        self, claimed: Sequence[ClaimedMessage], now: datetime
    ) -> tuple[list[ClaimedMessage], list[tuple[int, datetime]], list[int]]:
        """Splits a claim into messages to send now, to defer to a later time, and to expire."""
        ready, deferred, expired = [], [], []
        allowed: dict[tuple[str, str | None], datetime] = {}
        for message in claimed:
            key = (message.kind, message.timezone)
            when = allowed.get(key)
            if when is None:
                when = allowed[key] = next_allowed(
                    kind=MessageKind(message.kind),
                    timezone=message.timezone or self.settings.default_timezone,
                    now=now,
                    send_window=self.send_window,
                    quiet_hours=self.quiet_hours,
                )
            if message.expires_at is not None and message.expires_at <= max(when, now):
                expired.append(message.id)
            elif when > now:
                deferred.append((message.id, when))
            else:
                ready.append(message)
        return ready, deferred, expired

    async def _send(self, claimed: list[ClaimedMessage], taken_at: datetime) -> None:
        now = clock.now()
        ready, deferred, expired = self._sort_by_time(claimed, now)
        if deferred or expired:
            # Back to the queue before anything was sent: for later, or to expire at once.
            held: list[tuple[int, datetime | None]] = [*deferred, *((i, None) for i in expired)]
            with session_scope(self.engine) as session:
                claims.put_back(db_session=session, owner=self.owner, moves=held, now=now)
                outcomes.expire(db_session=session, ids=expired, now=now)
            self.report.tally.add("deferred", len(deferred))
            self.report.tally.add(MessageState.EXPIRED, len(expired))
        ready = self._without_exited(ready, now)
        by_provider: dict[str, list[ClaimedMessage]] = {}
        for message in ready:
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
        self.report.tally.add(MessageState.CANCELLED, len(stopped))
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
                results = await self._call(provider, outgoing, timeout=budget)
        self._record(provider, chunk, results)

    def _record(
        self, provider: SmsProvider, chunk: list[ClaimedMessage], results: list[SendResult] | None
    ) -> None:
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
                return
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
        self.report.tally.merge(tally)

    async def _call(
        self, provider: SmsProvider, outgoing: list[OutgoingMessage], *, timeout: float
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
            log.exception(
                "provider %s: outcome of %d messages unknown", provider.name, len(outgoing)
            )
            return None
        return None

    async def _poll_receipts(self) -> None:
        for provider in list(self.providers.values()):
            if not isinstance(provider, ReceiptSource):
                continue
            batch = await provider.poll_receipts()
            if batch:
                with session_scope(self.engine) as session:
                    receipts.apply_receipts(db_session=session, receipts=batch, now=clock.now())
                self.report.receipts += len(batch)

    async def _poll_replies(self) -> None:
        """Stores the replies of providers that hand them over on their own connection."""
        for provider in list(self.providers.values()):
            if not isinstance(provider, ReplySource):
                continue
            batch = await provider.poll_replies()
            if batch:
                with session_scope(self.engine) as session:
                    inbound.store_replies(db_session=session, replies=batch, now=clock.now())
                self.report.replies += len(batch)

    async def _reconcile(self) -> None:
        tally = await reconcile(
            engine=self.engine,
            providers=self.providers,
            now=clock.now(),
            receipt_timeout=self.settings.dispatch_receipt_timeout,
            owner=self.owner,
        )
        self.report.tally.merge(tally)

    async def _housekeeper(self, *, once: bool) -> None:
        reconcile_every = max(0.5, self.lease / 2)
        last_reconcile = last_rollout = clock.now()
        # Flag late tickets on the first round too, so a short run (and a restart) catches
        # the breaches nobody was looking at.
        last_breaches: datetime | None = None
        last_health: datetime | None = None
        health_every = self.settings.health_check_minutes * 60
        last_credit = last_callbacks = clock.now()
        last_expiry: datetime | None = None  # on the first round too: a restart catches up
        last_upkeep: datetime | None = None  # orders an import left without points, too
        last_triggers: datetime | None = None  # date triggers: at start, then every interval
        last_steps: datetime | None = None  # campaign steps: at start, then every interval
        while not self._stop.is_set():
            await self._pause(HOUSEKEEPING_INTERVAL)
            await self._poll_receipts()
            await self._poll_replies()
            now = clock.now()
            if (now - last_rollout).total_seconds() >= ROLLOUT_INTERVAL:
                # Release the next rollout stage of healthy campaigns, pause the others.
                with session_scope(self.engine) as session:
                    rollout.advance_rollouts(db_session=session, now=now)
                last_rollout = now
            if last_steps is None or (now - last_steps).total_seconds() >= ROLLOUT_INTERVAL:
                # Make recurring campaigns' runs and plan campaigns' steps that have come due.
                await asyncio.to_thread(self._plan_steps, now)
                last_steps = now
            if last_breaches is None or (now - last_breaches).total_seconds() >= BREACH_INTERVAL:
                with session_scope(self.engine) as session:
                    tickets.flag_breaches(db_session=session, now=now)
                last_breaches = now
            if last_health is None or (now - last_health).total_seconds() >= health_every:
                # Off the loop: posting a breach to the webhook may wait on the network.
                await asyncio.to_thread(self._check_health, now)
                last_health = now
            if (now - last_credit).total_seconds() >= self.settings.attribution_interval_seconds:
                # Off the loop too: crediting reads the recent orders in bulk.
                await asyncio.to_thread(self._attribute_orders, now)
                last_credit = now
            if last_expiry is None or (now - last_expiry).total_seconds() >= POINTS_EXPIRY_INTERVAL:
                await asyncio.to_thread(self._expire_points, now)
                last_expiry = now
            if due(last_upkeep, now, LOYALTY_UPKEEP_INTERVAL):
                await asyncio.to_thread(self._loyalty_upkeep, now)
                last_upkeep = now
            if not once and due(last_triggers, now, self.settings.trigger_interval_seconds):
                # A pass over a large base takes a while: it runs beside the housekeeping.
                self._trigger_pass = asyncio.create_task(
                    asyncio.to_thread(scheduled_pass, self.engine, now=now)
                )
                last_triggers = now
            idle = self._callback_pass is None or self._callback_pass.done()
            if idle and (now - last_callbacks).total_seconds() >= CALLBACK_INTERVAL:
                # Posting waits on integrators' servers: it runs beside the housekeeping.
                self._callback_pass = asyncio.create_task(asyncio.to_thread(self._post_callbacks))
                last_callbacks = now
            if (now - last_reconcile).total_seconds() >= reconcile_every:
                await self._reconcile()
                since = now - timedelta(seconds=self.settings.dispatch_receipt_timeout)
                with session_scope(self.engine) as session:
                    receipts.rematch_recent(db_session=session, since=since, now=now)
                    service.complete_finished(db_session=session)
                last_reconcile = now
            if once and self._nothing_left(now):
                return

    def _post_callbacks(self) -> None:
        """Notes API messages' state changes and posts the status callbacks due."""
        try:
            callbacks.run_pass(self.engine, settings=self.settings)
        except Exception:
            log.exception("posting status callbacks failed; the next pass tries again")

    def _check_health(self, now: datetime) -> None:
        """Stores, logs and posts new breaches of the last day's sending health."""
        try:
            with session_scope(self.engine) as session:
                health.check_health(db_session=session, days=1, now=now, settings=self.settings)
        except Exception:
            log.exception("the health check failed; it runs again at the next interval")

    def _attribute_orders(self, now: datetime) -> None:
        """Credits the recent orders to the messages that earned them."""
        try:
            with session_scope(self.engine) as session:
                attribute_orders(db_session=session, now=now, settings=self.settings)
        except Exception:
            log.exception("crediting orders failed; it runs again at the next interval")

    def _plan_steps(self, now: datetime) -> None:
        """Makes the runs of recurring campaigns and plans the campaign steps that are due."""
        try:
            with session_scope(self.engine) as session:
                recurring.make_due_runs(db_session=session, now=now)
                followups.plan_due(db_session=session, now=now)
        except Exception:
            log.exception("planning campaign steps failed; it runs again at the next interval")

    def _expire_points(self, now: datetime) -> None:
        """Writes off what is left of points lots past their date."""
        try:
            with session_scope(self.engine) as session:
                points.expire(db_session=session, now=now)
        except Exception:
            log.exception("expiring points failed; it runs again at the next interval")

    def _loyalty_upkeep(self, now: datetime) -> None:
        """Credits orders left without points and voids coupons whose message never arrived."""
        try:
            with session_scope(self.engine) as session:
                # One anti-join on the accruals' order index: cheap when nothing is missing.
                points.accrue_orders(db_session=session, now=now)
                coupons.void_undelivered(db_session=session)
        except Exception:
            log.exception("points catch-up failed; it runs again at the next interval")

    def _nothing_left(self, now: datetime) -> bool:
        """True when no message is due (or retrying soon), in flight, or awaiting a receipt."""
        m = Message.__table__.c
        retry_horizon = now + timedelta(seconds=outcomes.BACKOFF_CAP)
        receipt_horizon = now - timedelta(seconds=self.settings.dispatch_receipt_timeout)
        due = and_(
            m.state == MessageState.QUEUED,
            claims.campaign_running(),
            or_(m.send_at <= now, and_(m.attempts > 0, m.send_at <= retry_horizon)),
        )
        awaiting = and_(m.state == MessageState.SUBMITTED, m.submitted_at > receipt_horizon)
        pending = or_(due, m.state == MessageState.SUBMITTING, awaiting)
        with session_scope(self.engine) as session:
            left = session.execute(
                select(func.count()).select_from(Message.__table__).where(pending)
            ).scalar_one()
            # A rollout stage about to be released is work left too.
            return left == 0 and not rollout.release_pending(db_session=session)
