"""The scheduler of date triggers: one pass over every enabled date trigger, for one day.

One scheduler runs per deployment: on PostgreSQL only the process holding an advisory lock
runs a pass (the others skip it), on SQLite the process itself does. A pass may run any number
of times a day; each occasion fires once (`tidings.triggers.firing`). `tidings trigger
run-once` runs a pass; `tidings serve` and `tidings worker` run one every
TIDINGS_TRIGGER_INTERVAL_SECONDS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tidings.config import get_settings
from tidings.db import read_frame, session_scope, utc_text
from tidings.loyalty import points
from tidings.profiles import thresholds
from tidings.triggers import dates, lifecycle, service
from tidings.triggers.catalogue import Reacts, builtin
from tidings.triggers.firing import Fired, FiringSpec, fire, member_frame
from tidings.triggers.models import Trigger

# The advisory lock's keys: a constant every process agrees on ("tids" in ASCII), and the
# store's schema, since advisory locks span the database and a deployment is one schema.
SCHEDULER_LOCK_KEY = 0x74696473
LOCK = "pg_try_advisory_lock(:key, hashtext(current_schema()))"
UNLOCK = "pg_advisory_unlock(:key, hashtext(current_schema()))"
_local = threading.Lock()
log = logging.getLogger(__name__)
UTC_TIME = pl.Datetime("us", "UTC")


@contextmanager
def scheduler_lock(engine: Engine) -> Iterator[bool]:
    """Yields whether this process may run the scheduler now (and holds the right meanwhile)."""
    if engine.dialect.name != "postgresql":
        taken = _local.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                _local.release()
        return
    with engine.connect() as connection:
        taken = bool(
            connection.execute(text(f"SELECT {LOCK}"), {"key": SCHEDULER_LOCK_KEY}).scalar()
        )
        connection.commit()
        try:
            yield taken
        finally:
            if taken:
                connection.execute(text(f"SELECT {UNLOCK}"), {"key": SCHEDULER_LOCK_KEY})
                connection.commit()


@dataclass(frozen=True)
class Day:
    """The day a pass is for, in the brand's timezone, and the moment it runs."""

    today: date
    now: datetime
    timezone: str


Occasions = tuple[pl.DataFrame, pl.DataFrame | None]  # occasions, and members if read already


def _with(fields: set[str] | None, *more: str) -> set[str] | None:
    """The fields to read plus `more` (None stays None: every field)."""
    return None if fields is None else fields | set(more)


def _order_dates(engine: Engine) -> pl.DataFrame:
    """Each member's first and last order time (UTC)."""
    return read_frame(
        engine,
        "SELECT member_id, MIN(ordered_at) AS first_at, MAX(ordered_at) AS last_at"
        " FROM orders GROUP BY member_id",
        schema={"member_id": pl.Int64, "first_at": UTC_TIME, "last_at": UTC_TIME},
    )


def _birthday(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    fields = _with(spec.fields(), "birthday", "birthday_is_lunar")
    members = member_frame(engine, member_ids=None, fields=fields, today=day.today)
    found = dates.birthday_occasions(
        members,
        today=day.today,
        days_before=int(service.setting(trigger, "days_before")),
        timezone=day.timezone,
    )
    return found, members.drop("birthday")


def _first_order(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    found = dates.first_order_occasions(
        _order_dates(engine),
        today=day.today,
        days_after=int(service.setting(trigger, "days_after")),
        window_days=int(service.setting(trigger, "window_days")),
        timezone=day.timezone,
    )
    return found, None


def _winback(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    second = service.setting(trigger, "second_step_days")
    found = dates.winback_occasions(
        _order_dates(engine),
        today=day.today,
        days=int(service.setting(trigger, "days")),
        second_step_days=int(second) if second else None,
        window_days=int(service.setting(trigger, "window_days")),
        timezone=day.timezone,
    )
    return found, None


def _time_literal(engine: Engine, moment: datetime) -> str:
    """A time as the store compares it in SQL text (SQLite keeps UTC text)."""
    return utc_text(moment) if engine.dialect.name == "sqlite" else moment.isoformat()


def _replenishment(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    days = int(service.setting(trigger, "days_before"))
    last = day.today + timedelta(days=days)
    profiles = read_frame(
        engine,
        "SELECT member_id, next_run_out_on, CAST(replenishment AS TEXT) AS replenishment"
        f" FROM profiles WHERE next_run_out_on >= '{day.today.isoformat()}'"
        f" AND next_run_out_on <= '{last.isoformat()}'",
        schema={"member_id": pl.Int64, "next_run_out_on": pl.Date, "replenishment": pl.String},
    )
    products = read_frame(
        engine,
        "SELECT sku, name AS product_name FROM products",
        schema={"sku": pl.String, "product_name": pl.String},
    )
    found = lifecycle.replenishment_occasions(profiles, products, today=day.today, days_before=days)
    return found, None


def _points_expiring(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    days = int(service.setting(trigger, "days_ahead"))
    since = _time_literal(engine, day.now)
    until = _time_literal(engine, day.now + timedelta(days=days))
    lots = read_frame(
        engine,
        "SELECT member_id, remaining, expires_at FROM points_lots WHERE remaining > 0"
        f" AND expires_at > '{since}' AND expires_at <= '{until}'",
        schema={"member_id": pl.Int64, "remaining": pl.Int64, "expires_at": UTC_TIME},
    )
    expiring = points.expiring_soon(lots, now=day.now, days=days, timezone=day.timezone)
    return lifecycle.points_occasions(expiring), None


def _tier_change(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    window = int(service.setting(trigger, "window_days"))
    since = day.today - timedelta(days=window)
    profiles = read_frame(
        engine,
        "SELECT member_id, tier, previous_tier, tier_changed_at FROM profiles"
        f" WHERE tier_changed_at >= '{since.isoformat()}'",
        schema={
            "member_id": pl.Int64,
            "tier": pl.String,
            "previous_tier": pl.String,
            "tier_changed_at": pl.Date,
        },
    )
    return lifecycle.tier_up_occasions(profiles, today=day.today, window_days=window), None


def _recently_noted(engine: Engine, trigger_id: int, since: datetime) -> pl.DataFrame:
    """Members this trigger fired for since `since`."""
    return read_frame(
        engine,
        f"SELECT DISTINCT member_id FROM trigger_firings WHERE trigger_id = {int(trigger_id)}"
        f" AND fired_at >= '{_time_literal(engine, since)}'",
        schema={"member_id": pl.Int64},
    )


def _tier_loss(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    t = thresholds.from_settings(get_settings())
    tiers = read_frame(
        engine,
        "SELECT member_id, tier FROM profiles WHERE tier IN ('silver', 'gold')",
        schema={"member_id": pl.Int64, "tier": pl.String},
    )
    if t.tier_from_pos:  # the POS reviews tiers by its own rule, which cannot be foreseen here
        tiers = tiers.clear()
    since = day.now - timedelta(days=t.tier_window_days + 1)
    orders = read_frame(
        engine,
        "SELECT member_id, ordered_at, amount_cents FROM orders"
        f" WHERE member_id IS NOT NULL AND ordered_at >= '{_time_literal(engine, since)}'",
        schema={"member_id": pl.Int64, "ordered_at": UTC_TIME, "amount_cents": pl.Int64},
    )
    found = lifecycle.tier_loss_occasions(
        orders,
        tiers,
        today=day.today,
        days_before=int(service.setting(trigger, "days_before")),
        window_days=t.tier_window_days,
        minimums={"silver": t.silver_min_cents, "gold": t.gold_min_cents},
        timezone=day.timezone,
    )
    # Once per member per tier window, however the lapse day moves with later orders.
    noted = _recently_noted(engine, trigger.id, day.now - timedelta(days=t.tier_window_days))
    return found.join(noted, on="member_id", how="anti"), None


def _holiday_warmup(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    coming = lifecycle.next_holiday(
        day.today, days_before=int(service.setting(trigger, "days_before"))
    )
    members = member_frame(engine, member_ids=None, fields=spec.fields(), today=day.today)
    if coming is None:
        return members.select("member_id", key=pl.lit("")).clear(), None
    name, first_day = coming
    found = members.select(
        "member_id",
        key=pl.lit(f"holiday:{first_day:%Y%m%d}"),
        holiday=pl.lit(name),
        holiday_on=pl.lit(first_day),
    )
    return found, members


DATE_TRIGGERS: dict[str, Callable[[Engine, Trigger, FiringSpec, Day], Occasions]] = {
    "birthday": _birthday,
    "first_order": _first_order,
    "winback": _winback,
    "replenishment": _replenishment,
    "points_expiring": _points_expiring,
    "tier_change": _tier_change,
    "tier_loss": _tier_loss,
    "holiday_warmup": _holiday_warmup,
}


def _custom_date(engine: Engine, trigger: Trigger, spec: FiringSpec, day: Day) -> Occasions:
    field = str(trigger.date_field)
    fields = _with(spec.fields(), field)
    members = member_frame(engine, member_ids=None, fields=fields, today=day.today)
    found = dates.date_field_occasions(
        members,
        field=field,
        today=day.today,
        offset_days=int(service.setting(trigger, "offset_days") or 0),
        window_days=int(service.setting(trigger, "window_days") or 0),
        timezone=day.timezone,
    )
    return found, members


def _is_date_trigger(trigger: Trigger) -> bool:
    item = builtin(trigger.kind)
    if item is None:
        return trigger.date_field is not None
    return item.reacts is Reacts.DATE


def run_trigger(db_session: Session, *, trigger: Trigger, day: Day) -> Fired:
    """Evaluates one date trigger for `day` and fires what is due; never commits."""
    engine = db_session.get_bind()
    assert isinstance(engine, Engine)
    spec = service.spec_of(trigger)
    evaluate = _custom_date if trigger.date_field else DATE_TRIGGERS.get(trigger.kind)
    if evaluate is None:
        return Fired()
    found, members = evaluate(engine, trigger, spec, day)
    expiry = dates.expiry_after(day.now, trigger.expiry_minutes)
    defaults = {"desired_at": day.now, "expires_at": expiry}
    found = found.with_columns(
        pl.lit(value, dtype=UTC_TIME).alias(name)
        for name, value in defaults.items()
        if name not in found.columns
    )
    return fire(db_session, spec=spec, occasions=found, now=day.now, members=members)


def run_once(
    engine: Engine, *, now: datetime, as_of: date | None = None, only: str | None = None
) -> dict[str, dict[str, object]] | None:
    """Runs every enabled date trigger (or `only` that one) for `as_of` (default: today in
    the brand's timezone); commits per trigger. Returns what each did, or None when another
    process holds the scheduler."""
    zone = get_settings().default_timezone
    now = now.astimezone(UTC)
    day = Day(today=as_of or dates.local_day(now, zone), now=now, timezone=zone)
    with scheduler_lock(engine) as mine:
        if not mine:
            return None
        with session_scope(engine) as db_session:
            if only is not None:
                chosen = [service.get(db_session=db_session, ref=only)]
            else:
                chosen = [t for t in service.list_triggers(db_session=db_session) if t.enabled]
            ids = [t.id for t in chosen if _is_date_trigger(t)]
        report: dict[str, dict[str, object]] = {}
        for trigger_id in ids:
            with session_scope(engine) as db_session:
                trigger = service.get(db_session=db_session, ref=trigger_id)
                report[trigger.name] = run_trigger(db_session, trigger=trigger, day=day).as_dict()
        return report


def due(last: datetime | None, now: datetime, interval: float) -> bool:
    """Whether a periodic pass is due: never when `interval` is 0, else at once and then
    every `interval` seconds."""
    return interval > 0 and (last is None or (now - last).total_seconds() >= interval)


def scheduled_pass(engine: Engine, *, now: datetime) -> None:
    """One pass of the background scheduler; a failure is logged and the next pass retries."""
    try:
        report = run_once(engine, now=now)
    except Exception:
        log.exception("the trigger scheduler failed; it runs again at the next interval")
        return
    if report:
        fired = {name: counts["fired"] for name, counts in report.items() if counts["fired"]}
        log.info("trigger scheduler pass: %s", fired or "nothing due")
