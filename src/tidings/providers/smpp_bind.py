"""One SMPP transceiver bind: a session kept up with reconnects and backoff, a window of
outstanding submits that halves when the SMSC throttles and opens again one accepted submit
at a time, and the deliver_sm PDUs (receipts and replies) it hands to a callback.

The smpp34 library speaks the protocol (bind, enquire_link, sequence numbers, timers); this
module decides what a broken session means for a submit: not written at all, so safe to send
again, or written without an answer, so its fate is unknown and it must never be sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import smpp34

log = logging.getLogger(__name__)
RECONNECT_FIRST = 0.2  # seconds before the first reconnect
RECONNECT_MAX = 30.0  # seconds; reconnects back off to this at most
STABLE_SESSION = 30.0  # seconds a session must last for the next reconnect to be quick again
UNBIND_GRACE = 2.0  # seconds an unbind may take when closing
INBOUND_CAPACITY = 100_000  # deliver_sm held for the reader, per bind
UNAVAILABLE = "unavailable"  # no bind was up
BUSY = "busy"  # binds were up, but their windows, pauses or the rate left no room in time
THROTTLED = 0x58  # ESME_RTHROTTLED
QUEUE_FULL = 0x14  # ESME_RMSGQFUL
THROTTLING = frozenset({THROTTLED, QUEUE_FULL})


class NotHandedOver(Exception):
    """Nothing was written, so sending again is safe: the bind was down (`unavailable`), or
    its window, pause or rate had no room before the caller's time ran out (`busy`)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class OutcomeUnknown(Exception):
    """The submit was written but no answer came: the SMSC may or may not have it."""


@dataclass(frozen=True, slots=True)
class BindSettings:
    """Where and how a bind connects; the password never leaves this object but to bind."""

    host: str
    port: int
    system_id: str
    password: str
    system_type: str
    window: int  # submits outstanding at once
    connect_timeout: float  # seconds
    response_timeout: float  # seconds to wait for a submit_sm_resp
    throttle_pause: float  # seconds the bind sends nothing after the SMSC throttles

    def __repr__(self) -> str:
        return f"BindSettings({self.system_id}@{self.host}:{self.port}, window={self.window})"


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """The SMSC's answer to one submit_sm."""

    status: int  # command_status, 0 for accepted
    message_id: str | None


class Window:
    """The submits a bind may have outstanding: its configured size, halved by each
    throttling answer (which also pauses the bind), and grown back by one with each
    accepted submit."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.limit = self.size
        self.in_flight = 0
        self.paused_until = 0.0  # time.monotonic()
        self._changed = asyncio.Condition()

    def free(self) -> int:
        """Slots open now (negative while more are out than the cut window allows)."""
        return self.limit - self.in_flight

    async def acquire(self, give_up: float) -> None:
        """Waits for the end of a pause and for a slot, and takes the slot; raises
        NotHandedOver("busy") when neither comes before `give_up` (time.monotonic())."""
        while True:
            if (wait := self.paused_until - time.monotonic()) > 0:
                if self.paused_until >= give_up:
                    raise NotHandedOver(BUSY)
                await asyncio.sleep(wait)
                continue
            try:
                async with asyncio.timeout(give_up - time.monotonic()), self._changed:
                    await self._changed.wait_for(lambda: self.in_flight < self.limit)
                    # A throttling answer may have come while this waited: wait out its pause.
                    if self.paused_until <= time.monotonic():
                        self.in_flight += 1
                        return
            except TimeoutError:
                raise NotHandedOver(BUSY) from None

    async def release(self, *, throttled: bool, pause: float) -> None:
        """Gives a slot back; a throttled answer halves the window and pauses it."""
        async with self._changed:
            self.in_flight -= 1
            if throttled:
                self.limit = max(1, self.limit // 2)
                self.paused_until = max(self.paused_until, time.monotonic() + pause)
            elif self.limit < self.size:
                self.limit += 1
            self._changed.notify(max(1, self.limit - self.in_flight))


class SubmitRate:
    """At most `per_second` submit_sm in any second, over all binds of an account: a log of
    the last second's submits, exact to the PDU (a multi-part message counts every part)."""

    def __init__(
        self,
        per_second: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_second = per_second
        self._clock, self._sleep = clock, sleep
        self._recent: deque[float] = deque()  # when the last second's submits went

    async def take(self, give_up: float) -> float:
        """Waits for room in the last second and returns the moment it was taken; raises
        NotHandedOver("busy") when the room would only come after `give_up`."""
        while True:
            now = self._clock()
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) < self.per_second:
                self._recent.append(now)
                return now
            wait = self._recent[0] + 1.0 - now
            if now + wait >= give_up:
                raise NotHandedOver(BUSY)
            await self._sleep(wait)


class Bind:
    """One transceiver session to the SMSC, kept up until closed."""

    def __init__(
        self,
        name: str,
        settings: BindSettings,
        on_deliver: Callable[[smpp34.DeliverSmEvent], None],
    ) -> None:
        self.name = name
        self.settings = settings
        self.window = Window(settings.window)
        self.up = asyncio.Event()
        self._on_deliver = on_deliver
        self._client: smpp34.Client | None = None
        self._session: smpp34.Smsc | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts connecting in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep_bound(), name=f"smpp-bind-{self.name}")

    async def _keep_bound(self) -> None:
        delay = RECONNECT_FIRST
        while not self._closing:
            if await self._bind():
                bound_at = time.monotonic()
                await self._read()
                if time.monotonic() - bound_at >= STABLE_SESSION:
                    delay = RECONNECT_FIRST  # it had been fine: come back quickly
            if self._closing:
                break
            # Jittered, so that several binds (and several workers) do not come back at once,
            # and growing, so that an SMSC that refuses or drops every bind is not hammered.
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(RECONNECT_MAX, delay * 2)

    async def _bind(self) -> bool:
        s = self.settings
        client = smpp34.Client(
            s.host,
            s.port,
            s.system_id,
            s.password,
            bind_type="TRX",
            system_type=s.system_type,
            window_size=s.window,
            # Room for every deliver_sm a busy worker has not read yet: when this fills, the
            # library refuses receipts with a deliver_sm_resp that smpp34 1.5.0 writes one
            # byte longer than its command_length says, which breaks the session.
            inbound_capacity=INBOUND_CAPACITY,
            connect_timeout_ms=int(s.connect_timeout * 1000),
        )
        try:
            async with asyncio.timeout(s.connect_timeout):
                session = await client.connect()
        except Exception as error:  # a refused connection, a refused bind, a timeout
            reason = str(error) or type(error).__name__
            log.warning("SMPP bind %s to %s:%d failed: %s", self.name, s.host, s.port, reason)
            await _stop(client)
            return False
        self._client, self._session = client, session
        self.up.set()
        log.info("SMPP bind %s to %s:%d is up", self.name, s.host, s.port)
        return True

    async def _read(self) -> None:
        session = self._session
        try:
            # Until the session says it has ended, even once a send found it broken and
            # dropped it: the library answered the deliver_sm it took before, so the SMSC will
            # not send those receipts again, and they are read here or lost.
            while session is not None:
                event = await session.next()
                if isinstance(event, smpp34.Disconnected):
                    break
                try:
                    self._on_deliver(event)
                except Exception:  # one unreadable PDU must not end the session
                    log.exception("SMPP bind %s: could not read a deliver_sm", self.name)
        finally:
            if not self._closing:
                log.warning("SMPP bind %s lost its session; reconnecting", self.name)
            await self._drop(session)

    async def _drop(self, session: smpp34.Smsc | None) -> None:
        """Forgets a broken session (once), so nothing more is written to it."""
        if session is None or session is not self._session:
            return
        client, self._client, self._session = self._client, None, None
        self.up.clear()
        if client is not None:
            await _stop(client)

    async def submit(
        self, *, give_up: float, pace: Callable[[float], Awaitable[None]], **fields: object
    ) -> SubmitAnswer:
        """Sends one submit_sm within the window and returns the SMSC's answer.

        Raises NotHandedOver when nothing was written (the bind is down, or no room came
        before `give_up`) and OutcomeUnknown when the session broke or no answer came in
        time after the PDU was handed to the library. `pace(give_up)` is awaited once a
        window slot is held, right before the PDU goes out.
        """
        await self.window.acquire(give_up)
        throttled = False
        try:
            await pace(give_up)
            session = self._session
            if session is None or self._closing:
                raise NotHandedOver(UNAVAILABLE)
            try:
                async with asyncio.timeout(self.settings.response_timeout):
                    answer = await session.submit_sm(**fields)  # type: ignore[arg-type]
            except TimeoutError:
                # One late answer does not condemn the session; enquire_link tells if it died.
                raise OutcomeUnknown(f"{self.name}: no answer in time") from None
            except Exception as error:  # the session broke: nothing more goes through it
                await self._drop(session)
                raise OutcomeUnknown(f"{self.name}: {error}") from None
            throttled = answer.command_status in THROTTLING
            return SubmitAnswer(answer.command_status, answer.message_id)
        finally:
            await self.window.release(throttled=throttled, pause=self.settings.throttle_pause)

    async def close(self) -> None:
        """Unbinds and stops reconnecting."""
        self._closing = True
        session = self._session
        if session is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(UNBIND_GRACE):
                    await session.unbind()
        await self._drop(session)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _stop(client: smpp34.Client) -> None:
    with contextlib.suppress(Exception):
        await client.stop()
