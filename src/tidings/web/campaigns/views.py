"""Campaigns: the list, a campaign's live progress with pause, resume and cancel, and its
results (funnel, A/B verdict, lift and health) from the reports domain."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from tidings.accounts.models import Role
from tidings.campaigns import service as campaigns
from tidings.http import DbSession
from tidings.members.models import Store
from tidings.reports.charts import chart_data
from tidings.reports.service import campaign_report
from tidings.web.rendering import PAGE_SIZE, is_htmx, render
from tidings.web.security import CsrfChecked, CurrentViewer, NotFound

router = APIRouter(include_in_schema=False)
STEERS = (Role.MARKETER,)
SETTLED = ("delivered", "failed", "expired", "unknown", "cancelled", "skipped")


def campaign_status(db_session: Session, campaign_id: int) -> dict[str, Any]:
    """The campaign's status, or the console's not-found page."""
    try:
        return campaigns.status(db_session=db_session, campaign_id=campaign_id)
    except campaigns.CampaignNotFound as error:
        raise NotFound(str(error)) from error


def progress_of(status: dict[str, Any]) -> dict[str, int]:
    """How many of the campaign's messages are settled, of how many."""
    counts = status["messages"]
    total = sum(counts.values())
    settled = sum(counts.get(state, 0) for state in SETTLED)
    return {"total": total, "settled": settled}


@router.get("/campaigns")
def campaign_list(
    request: Request, viewer: CurrentViewer, db_session: DbSession, page: int = 1
) -> Response:
    """Lists campaigns, newest first, a page at a time."""
    rows = campaigns.list_campaigns(db_session=db_session)
    page = max(page, 1)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return render(
        request,
        "campaigns/templates/list.html",
        viewer=viewer,
        campaigns=shown,
        page=page,
        has_more=len(rows) > page * PAGE_SIZE,
    )


@router.get("/campaigns/{campaign_id}")
def progress(
    request: Request, campaign_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Shows the campaign's progress; htmx polls the fragment while it runs."""
    status = campaign_status(db_session, campaign_id)
    name = (
        "campaigns/templates/progress_panel.html"
        if is_htmx(request)
        else "campaigns/templates/progress.html"
    )
    return render(request, name, viewer=viewer, campaign=status, progress=progress_of(status))


def _steer(
    request: Request,
    viewer: Any,
    db_session: Session,
    campaign_id: int,
    step: Callable[[Session], object],
) -> Response:
    viewer.require(*STEERS)
    campaign_status(db_session, campaign_id)
    try:
        step(db_session)
    except (campaigns.CampaignError, campaigns.CampaignStateError) as error:
        db_session.rollback()
        status = campaign_status(db_session, campaign_id)
        return render(
            request,
            "campaigns/templates/progress.html",
            viewer=viewer,
            status_code=409,
            campaign=status,
            progress=progress_of(status),
            error=str(error),
        )
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/pause", dependencies=[CsrfChecked])
def pause(
    request: Request, campaign_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Pauses the campaign: nothing more of it is sent until it resumes."""
    return _steer(
        request,
        viewer,
        db_session,
        campaign_id,
        lambda s: campaigns.pause(db_session=s, campaign_id=campaign_id),
    )


@router.post("/campaigns/{campaign_id}/resume", dependencies=[CsrfChecked])
def resume(
    request: Request, campaign_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Resumes a paused campaign."""
    return _steer(
        request,
        viewer,
        db_session,
        campaign_id,
        lambda s: campaigns.resume(db_session=s, campaign_id=campaign_id),
    )


@router.post("/campaigns/{campaign_id}/cancel", dependencies=[CsrfChecked])
def cancel(
    request: Request, campaign_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Cancels the campaign and every message of it not yet handed to a provider."""
    return _steer(
        request,
        viewer,
        db_session,
        campaign_id,
        lambda s: campaigns.cancel(db_session=s, campaign_id=campaign_id),
    )


@router.get("/campaigns/{campaign_id}/results")
def results(
    request: Request, campaign_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Shows the funnel, the A/B verdict, the lift over the holdout and health."""
    campaign_status(db_session, campaign_id)
    report = campaign_report(db_session=db_session, campaign_id=campaign_id)
    if viewer.store_scope is not None:
        code = viewer_store_code(db_session, viewer.store_scope)
        report["by_store"] = [row for row in report["by_store"] if row.get("store_code") == code]
    return render(
        request,
        "campaigns/templates/results.html",
        viewer=viewer,
        report=report,
        store_only=viewer.store_scope is not None,
        charts=json.dumps(chart_data(report), ensure_ascii=False, default=str),
    )


def viewer_store_code(db_session: Session, store_id: int) -> str | None:
    """The code of a store manager's store."""
    store = db_session.get(Store, store_id)
    return store.code if store else None
