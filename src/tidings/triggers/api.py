"""REST endpoints of triggers: list, show and change them; events that set them off."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import stamina
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tidings import clock
from tidings.db import session_factory
from tidings.http import DbSession, problem, require_scope
from tidings.triggers import alerts, service
from tidings.triggers.intake import intake_for, snapshot_conflict
from tidings.triggers.schemas import (
    EventsBatch,
    EventsResult,
    LocationPing,
    Reaction,
    Trigger,
    TriggerCreate,
    TriggerUpdate,
    WeatherAlert,
)

router = APIRouter(tags=["triggers"])
T = TypeVar("T")
_SQLITE_WRITER = threading.Lock()
Problems: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such trigger (or member)."},
    422: {"description": "The request cannot be used as given; the detail says why."},
}


def _answer(db_session: Session, action: Callable[[Session], T]) -> T | JSONResponse:
    """Runs a service call and turns the errors a person can cause into problem+json."""
    try:
        return action(db_session)
    except service.TriggerNotFound as error:
        db_session.rollback()
        return problem(404, "Trigger not found", str(error))
    except alerts.UnknownMember as error:
        db_session.rollback()
        return problem(404, "Member not found", str(error))
    except service.TriggerError as error:
        db_session.rollback()
        return problem(422, "Invalid trigger", str(error))


def _settle(db_session: Session) -> None:
    """Ends the request's own session (the API key's check, which notes when the key was last
    used) before the events are written; on SQLite a note that lost a race is dropped."""
    try:
        db_session.commit()
    except OperationalError:
        db_session.rollback()


def _in_turn(
    request: Request, db_session: Session, work: Callable[[Session], T]
) -> T | JSONResponse:
    """Runs `work` in a session of its own and commits it.

    SQLite has one writer: this process's requests take turns, and one whose snapshot went
    stale (another process wrote after it read) is simply run again, since firing is
    idempotent. The request's own session (the API key's check, which notes when the key was
    last used) is settled first; if its note lost a race it is dropped. PostgreSQL runs
    requests side by side.
    """
    engine = request.app.state.engine
    sqlite = engine.dialect.name == "sqlite"
    with _SQLITE_WRITER if sqlite else contextlib.nullcontext():
        _settle(db_session)
        for attempt in stamina.retry_context(
            on=snapshot_conflict, attempts=10, wait_initial=0.01, wait_max=0.5
        ):
            with attempt, session_factory(engine)() as session:
                result = _answer(session, work)
                session.commit()
    return result


@router.get(
    "/triggers", response_model=list[Trigger], dependencies=[require_scope("triggers:read")]
)
def list_triggers(db_session: DbSession) -> Any:
    """Every trigger, built-in and the operator's, with its settings and firings."""
    counts = service.firing_counts(db_session=db_session)
    return [
        service.describe(t, counts.get(t.id)) for t in service.list_triggers(db_session=db_session)
    ]


@router.post(
    "/triggers",
    response_model=Trigger,
    status_code=201,
    responses=Problems,
    dependencies=[require_scope("triggers:write")],
)
def create_trigger(body: TriggerCreate, db_session: DbSession) -> Any:
    """Creates an operator's trigger on an event type or a date field."""
    return _answer(db_session, lambda s: service.describe(service.create(db_session=s, spec=body)))


@router.get(
    "/triggers/{ref}",
    response_model=Trigger,
    responses=Problems,
    dependencies=[require_scope("triggers:read")],
)
def get_trigger(ref: str, db_session: DbSession) -> Any:
    """One trigger by id or name."""

    def show(session: Session) -> dict[str, Any]:
        trigger = service.get(db_session=session, ref=ref)
        return service.describe(trigger, service.firing_counts(db_session=session).get(trigger.id))

    return _answer(db_session, show)


@router.patch(
    "/triggers/{ref}",
    response_model=Trigger,
    responses=Problems,
    dependencies=[require_scope("triggers:write")],
)
def patch_trigger(ref: str, body: TriggerUpdate, db_session: DbSession) -> Any:
    """Switches a trigger on or off, or changes its settings, template or conditions."""
    changes = body.model_dump(exclude_unset=True)

    def change(session: Session) -> dict[str, Any]:
        return service.describe(service.update(db_session=session, ref=ref, changes=changes))

    return _answer(db_session, change)


@router.post(
    "/events:batch", response_model=EventsResult, dependencies=[require_scope("events:write")]
)
def events_batch(body: EventsBatch, request: Request, db_session: DbSession) -> Any:
    """Stores up to 10,000 events (an id sent twice is kept once) and fires the triggers they
    set off (cart reminders, custom triggers) at once; unknown members are listed as errors."""
    _settle(db_session)
    try:
        return intake_for(request.app.state.engine).record(body.events, now=clock.now())
    except (service.TriggerError, service.TriggerNotFound) as error:
        return problem(422, "Invalid trigger", str(error))


@router.post(
    "/events/weather", response_model=Reaction, dependencies=[require_scope("events:write")]
)
def weather(body: WeatherAlert, request: Request, db_session: DbSession) -> Any:
    """A weather alert for a city: members of its stores get the matching advice, once."""

    def react(session: Session) -> Reaction:
        stored, fired = alerts.weather_alert(session, alert=body, now=clock.now())
        return Reaction(stored=stored, fired=fired)

    return _in_turn(request, db_session, react)


@router.post(
    "/events/location",
    response_model=Reaction,
    responses=Problems,
    dependencies=[require_scope("events:write")],
)
def location(body: LocationPing, request: Request, db_session: DbSession) -> Any:
    """Where a member is: near a store (within the geofence radius), an instant offer."""

    def react(session: Session) -> Reaction:
        nearest, fired = alerts.location_ping(session, ping=body, now=clock.now())
        detail = f"near {nearest}" if nearest else "no store within the radius"
        return Reaction(stored=True, fired=fired, detail=detail)

    return _in_turn(request, db_session, react)
