"""Triggers set off by the world around members: a weather alert for a city, a member near a
store. Each stores the event, finds the members it concerns and fires; never commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore
from tidings.orders.models import Event
from tidings.triggers import events as occasions
from tidings.triggers import service
from tidings.triggers.dates import expiry_after
from tidings.triggers.firing import fire
from tidings.triggers.reactions import resolve_members
from tidings.triggers.schemas import LocationPing, WeatherAlert

UTC_TIME = pl.Datetime("us", "UTC")


class UnknownMember(LookupError):
    """An event names a member the store does not know."""


def _store_event(db_session: Session, **values: Any) -> bool:
    """Stores an event unless its id is known; tells whether it was new."""
    external = values.get("external_id")
    if external is not None:
        seen = db_session.execute(
            text("SELECT 1 FROM events WHERE external_id = :id"), {"id": external}
        ).first()
        if seen is not None:
            return False
    db_session.add(Event(**values))
    db_session.flush()
    return True


def weather_alert(
    db_session: Session, *, alert: WeatherAlert, now: datetime
) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Sends the alert's advice to members whose home store is in its city, once per alert."""
    moment = alert.occurred_at or now
    stored = _store_event(
        db_session,
        external_id=f"weather:{alert.alert_id}",
        kind="weather",
        occurred_at=moment,
        payload={"city": alert.city, "kind": alert.kind},
        created_at=now,
    )
    fired: dict[str, dict[str, Any]] = {}
    triggers = service.enabled_of_kind(db_session=db_session, kind="weather")
    if not triggers:
        return stored, fired
    members = BulkStore(db_session).frame(
        "SELECT m.id FROM members m JOIN stores s ON s.id = m.store_id"
        " WHERE m.erased_at IS NULL AND s.city = ?",
        (alert.city,),
        schema={"member_id": pl.Int64},
    )
    for trigger in triggers:
        advice = dict(service.setting(trigger, "advice") or {})
        found = members.select(
            "member_id",
            key=pl.lit(f"weather:{alert.alert_id}"[:64]),
            desired_at=pl.lit(now, dtype=UTC_TIME),
            expires_at=pl.lit(expiry_after(now, trigger.expiry_minutes), dtype=UTC_TIME),
            advice=pl.lit(advice.get(alert.kind), dtype=pl.String),
        )
        spec = service.spec_of(trigger)
        fired[trigger.name] = fire(db_session, spec=spec, occasions=found, now=now).as_dict()
    return stored, fired


def _recently_fired(db_session: Session, trigger_id: int, member_id: int, since: datetime) -> bool:
    found = db_session.execute(
        text(
            "SELECT 1 FROM trigger_firings WHERE trigger_id = :t AND member_id = :m"
            " AND fired_at >= :since AND outcome = 'queued'"
        ),
        {"t": trigger_id, "m": member_id, "since": since},
    ).first()
    return found is not None


def _store_places(db_session: Session) -> pl.DataFrame:
    """Every store's id, name and coordinates."""
    return BulkStore(db_session).frame(
        "SELECT id, name, latitude, longitude FROM stores",
        schema={
            "store_id": pl.Int64,
            "nearby_store": pl.String,
            "latitude": pl.Float64,
            "longitude": pl.Float64,
        },
    )


def location_ping(
    db_session: Session, *, ping: LocationPing, now: datetime
) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """Offers the nearest store within the radius to a member, at most once per cool-down.

    Returns the nearby store's name (None when none is near) and what fired.
    """
    member_id = resolve_members(db_session, [ping])[0]
    if member_id is None:
        raise UnknownMember("no member matches the event's member_id, member_code or phone")
    moment = ping.occurred_at or now
    _store_event(
        db_session,
        member_id=member_id,
        kind="location",
        occurred_at=moment,
        payload={"latitude": ping.latitude, "longitude": ping.longitude},
        created_at=now,
    )
    stores = _store_places(db_session)
    here = pl.DataFrame(
        {"member_id": [member_id], "latitude": [ping.latitude], "longitude": [ping.longitude]}
    )
    fired: dict[str, dict[str, Any]] = {}
    nearest: str | None = None
    for trigger in service.enabled_of_kind(db_session=db_session, kind="geofence"):
        near = occasions.nearest_stores(
            here, stores, radius_km=float(service.setting(trigger, "radius_km"))
        )
        if near.height == 0:
            continue
        nearest = str(near["nearby_store"][0])
        cooldown = timedelta(days=float(service.setting(trigger, "cooldown_days")))
        if _recently_fired(db_session, trigger.id, member_id, now - cooldown):
            fired[trigger.name] = {"occasions": 1, "fired": 0, "queued": 0, "skipped": {}}
            continue
        found = near.select(
            "member_id",
            "nearby_store",
            key=pl.lit(f"geofence:{moment.strftime(occasions.STAMP)}"),
            desired_at=pl.lit(now, dtype=UTC_TIME),
            expires_at=pl.lit(expiry_after(now, trigger.expiry_minutes), dtype=UTC_TIME),
        )
        spec = service.spec_of(trigger)
        fired[trigger.name] = fire(db_session, spec=spec, occasions=found, now=now).as_dict()
    return nearest, fired
