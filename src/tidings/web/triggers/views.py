"""Triggers: the standing rules (built-in and the operator's) with what each fired, and the
switch that turns one on or off (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from tidings.accounts.models import Role
from tidings.audit import service as audit
from tidings.http import DbSession
from tidings.triggers import service as triggers
from tidings.web.rendering import render
from tidings.web.security import CsrfChecked, CurrentViewer, NotFound

router = APIRouter(include_in_schema=False)


@router.get("/triggers")
def trigger_list(request: Request, viewer: CurrentViewer, db_session: DbSession) -> Response:
    """Lists the triggers with their firings by outcome."""
    viewer.require(Role.MARKETER, Role.ANALYST)
    counts = triggers.firing_counts(db_session=db_session)
    rows = [
        triggers.describe(trigger, counts.get(trigger.id))
        for trigger in triggers.list_triggers(db_session=db_session)
    ]
    return render(request, "triggers/templates/list.html", viewer=viewer, triggers=rows)


@router.post("/triggers/{trigger_id}/enabled", dependencies=[CsrfChecked])
def switch(
    request: Request,
    trigger_id: int,
    viewer: CurrentViewer,
    db_session: DbSession,
    enabled: Annotated[bool, Form()] = False,
) -> Response:
    """Turns a trigger on or off."""
    viewer.require(Role.MARKETER)
    try:
        trigger = triggers.set_enabled(db_session=db_session, ref=trigger_id, enabled=enabled)
    except triggers.TriggerNotFound as error:
        raise NotFound(str(error)) from error
    except triggers.TriggerError as error:
        db_session.rollback()
        return render(
            request, "layout/error.html", viewer=viewer, status_code=422, message=str(error)
        )
    audit.record(
        db_session=db_session,
        actor=viewer.name,
        action="trigger.enable" if enabled else "trigger.disable",
        subject=f"trigger:{trigger.name}",
    )
    return RedirectResponse("/triggers", status_code=303)
