"""REST endpoints of the reports domain: a campaign's results as JSON (the console draws its
charts from them) and its charts as PNG images."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse

from tidings import clock
from tidings.config import get_settings
from tidings.dispatch.service import CampaignNotFound
from tidings.http import DbSession, RowId, problem, require_scope
from tidings.reports import health
from tidings.reports.charts import chart_data
from tidings.reports.service import campaign_report, render_charts

router = APIRouter(prefix="/reports", tags=["reports"])
MAX_HEALTH_DAYS = 366  # a year of sends is read in one go; longer belongs in an export
Problems: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such campaign, or no such chart."},
}


@router.get(
    "/campaigns/{campaign_id}", responses=Problems, dependencies=[require_scope("reports:read")]
)
def get_campaign_report(campaign_id: RowId, db_session: DbSession) -> Any:
    """A campaign's funnel per variant, store and day, A/B comparison, lift and health, with
    the series its charts draw under `chart_data` (the PNGs are under .../charts/)."""
    try:
        report = campaign_report(db_session=db_session, campaign_id=campaign_id)
    except CampaignNotFound as error:
        db_session.rollback()
        return problem(404, "Campaign not found", str(error))
    return JSONResponse(jsonable_encoder({**report, "chart_data": chart_data(report)}))


@router.get(
    "/campaigns/{campaign_id}/charts/{name}.png",
    responses={**Problems, 200: {"content": {"image/png": {}}}},
    response_class=FileResponse,
    dependencies=[require_scope("reports:read")],
)
def get_campaign_chart(campaign_id: RowId, name: str, db_session: DbSession) -> Any:
    """One chart of a campaign's report (funnel, daily, ab, lift) as a PNG image."""
    try:
        report = campaign_report(db_session=db_session, campaign_id=campaign_id)
    except CampaignNotFound as error:
        db_session.rollback()
        return problem(404, "Campaign not found", str(error))
    folder = get_settings().var_dir / "charts" / f"campaign-{campaign_id}"
    charts = render_charts(report, folder)
    if name not in charts:
        known = ", ".join(sorted(charts)) or "none yet"
        return problem(404, "Chart not found", f"no chart '{name}'; this report has: {known}")
    return FileResponse(charts[name], media_type="image/png")


@router.get("/health", dependencies=[require_scope("reports:read")])
def get_health(
    db_session: DbSession,
    days: int = Query(7, ge=1, le=MAX_HEALTH_DAYS, description="How many days back to look."),
) -> Any:
    """Delivery, opt-out, complaint and reply rates per campaign, provider and day, with the
    thresholds and the breaches stored by the worker's health checks."""
    report = health.health_report(db_session=db_session, days=days, now=clock.now())
    return JSONResponse(jsonable_encoder(report))
