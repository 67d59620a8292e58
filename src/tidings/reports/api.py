"""REST endpoints of the reports domain: a campaign's results as JSON (the console draws its
charts from them) and its charts as PNG images."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse

from tidings.config import get_settings
from tidings.dispatch.service import CampaignNotFound
from tidings.http import DbSession, problem
from tidings.reports.service import campaign_report, render_charts

router = APIRouter(prefix="/reports", tags=["reports"])
Problems: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such campaign, or no such chart."},
}


@router.get("/campaigns/{campaign_id}", responses=Problems)
def get_campaign_report(campaign_id: int, db_session: DbSession) -> Any:
    """A campaign's funnel per variant, store and day, A/B comparison, lift and health."""
    try:
        report = campaign_report(db_session=db_session, campaign_id=campaign_id)
    except CampaignNotFound as error:
        db_session.rollback()
        return problem(404, "Campaign not found", str(error))
    return JSONResponse(jsonable_encoder(report))


@router.get(
    "/campaigns/{campaign_id}/charts/{name}.png",
    responses={**Problems, 200: {"content": {"image/png": {}}}},
    response_class=FileResponse,
)
def get_campaign_chart(campaign_id: int, name: str, db_session: DbSession) -> Any:
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
