"""The demo's day of triggers: the scheduler's pass over the retailer's dates (birthdays,
first orders, win-backs, run-outs, points expiring, tiers), then the events of a day (carts
left behind, an order that cancels its reminders, a rain alert, a member passing a store),
each through the same policy as campaigns. The messages stay queued for the next worker."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from rich.markup import escape
from sqlalchemy import Engine, func, select

from tidings import clock
from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState
from tidings.members.models import Member, Store
from tidings.triggers import alerts, reactions, scheduler
from tidings.triggers.models import Trigger
from tidings.triggers.schemas import EventIn, LocationPing, WeatherAlert

CARTS = 40  # members who leave a cart behind during the demo's day
SEED = 11
CITY = "上海"


def _counts(fired: dict[str, Any]) -> str:
    skipped = sum((fired.get("skipped") or {}).values())
    return f"{fired.get('queued', 0):,} queued" + (f", {skipped:,} skipped" if skipped else "")


def _events(engine: Engine) -> list[str]:
    """Carts, a rain alert and a member near a store; one line each."""
    now = clock.now()
    rng = random.Random(SEED)
    with session_scope(engine) as session:
        ids = list(session.scalars(select(Member.id).where(Member.erased_at.is_(None))))
        store = session.scalars(
            select(Store).where(Store.latitude.is_not(None)).order_by(Store.id)
        ).first()
    lines = []
    carts = [
        EventIn(
            id=f"demo-cart-{member}",
            member_id=member,
            kind="cart",
            occurred_at=now - timedelta(minutes=rng.randrange(5, 120)),
            payload={"product": rng.choice(["有机牛奶 1L", "进口车厘子 500g", "婴儿纸尿裤 L"])},
        )
        for member in rng.sample(ids, min(CARTS, len(ids)))
    ]
    with session_scope(engine) as session:
        result = reactions.record_events(session, batches=[carts], now=now)[0]
    lines.append(
        f"{len(carts)} carts left behind: {_counts(result.fired.get('cart_abandoned', {}))}"
    )
    alert = WeatherAlert(alert_id=f"demo-rain-{now:%Y%m%d}", city=CITY, kind="rain")
    with session_scope(engine) as session:
        _, fired = alerts.weather_alert(session, alert=alert, now=now)
    lines.append(f"rain alert in {CITY}: {_counts(fired.get('weather', {}))}")
    if store is not None and store.latitude is not None and store.longitude is not None:
        ping = LocationPing(
            member_id=rng.choice(ids), latitude=store.latitude + 0.005, longitude=store.longitude
        )
        with session_scope(engine) as session:
            near, fired = alerts.location_ping(session, ping=ping, now=now)
        lines.append(f"a member near {near or store.name}: {_counts(fired.get('geofence', {}))}")
    return lines


def _sample(engine: Engine) -> str:
    """One queued trigger message, as the member will read it."""
    with session_scope(engine) as session:
        row = session.execute(
            select(Trigger.name, Message.text)
            .join(Trigger, Trigger.id == Message.trigger_id)
            .where(Message.state == MessageState.QUEUED)
            .order_by(func.length(Message.text).desc())
            .limit(1)
        ).first()
    return f"e.g. {row[0]}: {row[1]}" if row else "no trigger message is queued"


def triggers_line(engine: Engine) -> str:
    """Runs the scheduler's pass for today and a day's events; says what each trigger did."""
    report = scheduler.run_once(engine, now=clock.now()) or {}
    dated = ", ".join(f"{name} {_counts(counts)}" for name, counts in report.items())
    lines = [f"scheduler pass for today: {dated or 'no date trigger is enabled'}"]
    lines += _events(engine)
    lines.append(_sample(engine))
    return escape("\n".join(lines))
