"""The worker's periodic chores beside sending: each one a name, how often it runs, and what
it does.

The housekeeper runs the chores that have come due between two polls of receipts. A chore's
failure is logged and leaves the others alone; it runs again at its next turn. Quick store
calls run on the event loop; chores that read in bulk or wait on the network run on a thread,
and the longest run beside the housekeeping, one pass at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine

from tidings.campaigns import followups, recurring, rollout
from tidings.config import Settings
from tidings.db import session_scope, writing_scope
from tidings.inbound import tickets
from tidings.loyalty import coupons
from tidings.loyalty import service as points
from tidings.notifications import callbacks
from tidings.orders import reactions
from tidings.reports import alerts, health
from tidings.tracking.credits import attribute_orders
from tidings.triggers.scheduler import scheduled_pass

log = logging.getLogger(__name__)
ROLLOUT_INTERVAL = 1.0  # seconds between checks of campaigns' rollout gates
STEPS_INTERVAL = 1.0  # seconds between looks for recurring runs and campaign steps due
BREACH_INTERVAL = 30.0  # seconds between flags of tickets past their first-response deadline
CALLBACK_INTERVAL = 1.0  # seconds between passes over API messages' status callbacks
POINTS_EXPIRY_INTERVAL = 86_400.0  # seconds between write-offs of expired points (daily)
LOYALTY_UPKEEP_INTERVAL = 3_600.0  # seconds between points catch-ups and coupon voids (hourly)
ORDER_REACTIONS_INTERVAL = 30.0  # seconds between looks for orders left without reactions


class Placement(StrEnum):
    """Where a chore runs."""

    LOOP = "loop"  # on the event loop: a quick store call
    THREAD = "thread"  # on a thread, awaited: it reads in bulk or waits on the network
    BESIDE = "beside"  # on a thread, not awaited: a long pass, one at a time


@dataclass(frozen=True, slots=True)
class Chore:
    """Something the worker does every so often."""

    name: str
    every: Callable[[Settings], float | None]  # seconds between runs; None: never
    work: Callable[[Engine, Settings, datetime], object]
    at_start: bool = True  # on the first round too, so a restart catches up
    placement: Placement = Placement.THREAD
    in_once: bool = True  # in a `--once` run too


def advance_rollouts(engine: Engine, settings: Settings, now: datetime) -> None:
    """Releases the next rollout stage of healthy campaigns and pauses the others."""
    with session_scope(engine) as session:
        rollout.advance_rollouts(db_session=session, now=now)


def plan_steps(engine: Engine, settings: Settings, now: datetime) -> None:
    """Makes the runs of recurring campaigns and plans the campaign steps that are due."""
    with session_scope(engine) as session:
        recurring.make_due_runs(db_session=session, now=now)
        followups.plan_due(db_session=session, now=now)


def flag_breaches(engine: Engine, settings: Settings, now: datetime) -> None:
    """Flags tickets past their first-response deadline."""
    with session_scope(engine) as session:
        tickets.flag_breaches(db_session=session, now=now)


def check_health(engine: Engine, settings: Settings, now: datetime) -> None:
    """Stores, logs and posts new breaches of the last day's sending health.

    The day's figures are read first, outside the writing, which then waits its turn beside
    the senders' writes instead of failing on SQLite as a transaction that had read would."""
    with session_scope(engine) as session:
        rows = health.health_rows(db_session=session, days=1, now=now, settings=settings)
    with writing_scope(engine) as session:
        alerts.record_breaches(db_session=session, rows=rows, now=now)
    with writing_scope(engine) as session:
        alerts.post_breaches(db_session=session, settings=settings, now=now)


def catch_up_orders(engine: Engine, settings: Settings, now: datetime) -> None:
    """Reacts to orders an import stored but stopped before reacting to (receipts, ...)."""
    reactions.catch_up(engine, settings, now)


def credit_orders(engine: Engine, settings: Settings, now: datetime) -> None:
    """Credits the recent orders to the messages that earned them."""
    with session_scope(engine) as session:
        attribute_orders(db_session=session, now=now, settings=settings)


def expire_points(engine: Engine, settings: Settings, now: datetime) -> None:
    """Writes off what is left of points lots past their date."""
    with session_scope(engine) as session:
        points.expire(db_session=session, now=now)


def loyalty_upkeep(engine: Engine, settings: Settings, now: datetime) -> None:
    """Credits orders left without points and voids coupons whose message never arrived."""
    # One anti-join on the accruals' order index: cheap when nothing is missing, and short
    # enough to read under the write lock, which its writes after reading need beside senders.
    with writing_scope(engine) as session:
        points.accrue_orders(db_session=session, now=now)
    with session_scope(engine) as session:  # one UPDATE: it waits its turn as it starts
        coupons.void_undelivered(db_session=session)


def run_triggers(engine: Engine, settings: Settings, now: datetime) -> None:
    """Fires the date triggers that are due."""
    scheduled_pass(engine, now=now)


def post_callbacks(engine: Engine, settings: Settings, now: datetime) -> None:
    """Notes API messages' state changes and posts the status callbacks due."""
    callbacks.run_pass(engine, settings=settings)


CHORES: tuple[Chore, ...] = (
    Chore("rollout gates", lambda _: ROLLOUT_INTERVAL, advance_rollouts, at_start=False,
          placement=Placement.LOOP),
    Chore("campaign steps", lambda _: STEPS_INTERVAL, plan_steps),
    Chore("ticket breaches", lambda _: BREACH_INTERVAL, flag_breaches, placement=Placement.LOOP),
    Chore("health check", lambda s: s.health_check_minutes * 60, check_health),
    Chore("order reactions", lambda _: ORDER_REACTIONS_INTERVAL, catch_up_orders),
    Chore("attribution", lambda s: s.attribution_interval_seconds, credit_orders, at_start=False),
    Chore("points expiry", lambda _: POINTS_EXPIRY_INTERVAL, expire_points),
    Chore("loyalty upkeep", lambda _: LOYALTY_UPKEEP_INTERVAL, loyalty_upkeep),
    # A pass over a large base takes a while; `--once` runs leave date triggers alone.
    Chore("trigger scheduler", lambda s: s.trigger_interval_seconds or None, run_triggers,
          placement=Placement.BESIDE, in_once=False),
    # Posting waits on integrators' servers.
    Chore("status callbacks", lambda _: CALLBACK_INTERVAL, post_callbacks, at_start=False,
          placement=Placement.BESIDE),
)  # fmt: skip


class ChoreRunner:
    """Runs the chores when due: knows when each last ran, and the passes still running."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        now: datetime,
        once: bool = False,
        chores: Sequence[Chore] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        table = CHORES if chores is None else chores
        self.chores = [chore for chore in table if chore.in_once or not once]
        self._last: dict[str, datetime | None] = {
            chore.name: None if chore.at_start else now for chore in self.chores
        }
        self._beside: dict[str, asyncio.Task[None]] = {}

    async def run_due(self, now: datetime) -> None:
        """Runs, in the table's order, every chore whose turn has come."""
        for chore in self.chores:
            if not self._due(chore, now):
                continue
            self._last[chore.name] = now
            if chore.placement is Placement.LOOP:
                self._run(chore, now)
            elif chore.placement is Placement.THREAD:
                await asyncio.to_thread(self._run, chore, now)
            else:
                self._beside[chore.name] = asyncio.create_task(
                    asyncio.to_thread(self._run, chore, now)
                )

    async def finish(self) -> None:
        """Waits for the passes still running beside the housekeeping."""
        await asyncio.gather(*self._beside.values())

    def _due(self, chore: Chore, now: datetime) -> bool:
        period = chore.every(self.settings)
        running = self._beside.get(chore.name)
        if period is None or (running is not None and not running.done()):
            return False
        last = self._last[chore.name]
        return last is None or (now - last).total_seconds() >= period

    def _run(self, chore: Chore, now: datetime) -> None:
        try:
            chore.work(self.engine, self.settings, now)
        except Exception:
            log.exception("chore %r failed; it runs again at its next turn", chore.name)
