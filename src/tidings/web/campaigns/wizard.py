"""The campaign wizard: audience, then content and variants, then schedule and rollout,
then a review of the plan (counts, skips by reason, cost, findings), then launch. The
answers so far travel in the signed session; the campaign is created and planned only
when the schedule is chosen, through the same services as the API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from tidings.accounts.models import Role
from tidings.campaigns import review as reviewing
from tidings.campaigns import service as campaigns
from tidings.campaigns.schemas import CampaignCreate, VariantCreate
from tidings.http import DbSession
from tidings.segments import service as segments
from tidings.web.campaigns.options import OptionError, coupon_fields, gate_fields
from tidings.web.rendering import render
from tidings.web.security import CsrfChecked, CurrentViewer, NotFound, Viewer

router = APIRouter(include_in_schema=False)
WIZARD_KEY = "campaign_wizard"
STEPS = ("audience", "content", "schedule")


def _step(
    request: Request, viewer: Viewer, step: str, status_code: int = 200, **extra: Any
) -> Response:
    draft = request.session.get(WIZARD_KEY, {})
    return render(
        request,
        f"campaigns/templates/wizard_{step}.html",
        viewer=viewer,
        status_code=status_code,
        draft=draft,
        steps=STEPS,
        step=step,
        **extra,
    )


@router.get("/campaigns/new/{step}")
def wizard_step(
    request: Request, step: str, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Shows one step of the wizard."""
    viewer.require(Role.MARKETER)
    if step not in STEPS:
        raise NotFound(f"the wizard has no step '{step}'; its steps are {', '.join(STEPS)}")
    return _step(request, viewer, step, saved=segments.list_segments(db_session=db_session))


@router.post("/campaigns/new/audience", dependencies=[CsrfChecked])
def choose_audience(
    request: Request,
    viewer: CurrentViewer,
    db_session: DbSession,
    name: Annotated[str, Form()] = "",
    segment: Annotated[str, Form()] = "",
    rule: Annotated[str, Form()] = "",
) -> Response:
    """Keeps the name and the audience (a saved segment or a rule)."""
    viewer.require(Role.MARKETER)
    error = None
    if not name.strip():
        error = "give the campaign a name, e.g. 双十一会员日"
    elif bool(segment.strip()) == bool(rule.strip()):
        error = "choose a saved segment or write a rule (one of the two)"
    if error:
        return _step(
            request,
            viewer,
            "audience",
            422,
            error=error,
            saved=segments.list_segments(db_session=db_session),
        )
    request.session[WIZARD_KEY] = {
        "name": name.strip(),
        "segment": segment.strip() or None,
        "rule": rule.strip() or None,
    }
    return RedirectResponse("/campaigns/new/content", status_code=303)


@router.post("/campaigns/new/content", dependencies=[CsrfChecked])
def choose_content(
    request: Request,
    viewer: CurrentViewer,
    template_a: Annotated[str, Form()] = "",
    template_b: Annotated[str, Form()] = "",
    weight_a: Annotated[int, Form()] = 1,
    weight_b: Annotated[int, Form()] = 1,
    link: Annotated[str, Form()] = "",
    link_utm: Annotated[bool, Form()] = False,
    coupon_kind: Annotated[str, Form()] = "none",
    coupon_code: Annotated[str, Form()] = "",
    coupon_value_yuan: Annotated[str, Form()] = "",
    coupon_percent: Annotated[str, Form()] = "",
    coupon_min_spend_yuan: Annotated[str, Form()] = "",
    coupon_valid_days: Annotated[str, Form()] = "30",
) -> Response:
    """Keeps the variants (B is optional), the campaign's link and its coupon."""
    viewer.require(Role.MARKETER)
    draft = dict(request.session.get(WIZARD_KEY, {}))
    if not draft:
        return RedirectResponse("/campaigns/new/audience", status_code=303)
    variants = [{"template": template_a.strip(), "weight": weight_a}]
    if template_b.strip():
        variants.append({"template": template_b.strip(), "weight": weight_b})
    try:
        [VariantCreate(**variant) for variant in variants]
    except ValidationError:
        return _step(request, viewer, "content", 422, error="write variant A's text")
    try:
        coupon = coupon_fields(
            kind=coupon_kind,
            code=coupon_code,
            value_yuan=coupon_value_yuan,
            percent=coupon_percent,
            min_spend_yuan=coupon_min_spend_yuan,
            valid_days=coupon_valid_days,
        )
    except OptionError as error:
        return _step(request, viewer, "content", 422, error=str(error))
    draft.pop("coupon", None)
    draft.pop("coupon_offer", None)
    draft.update(variants=variants, link=link.strip() or None, link_utm=link_utm, **coupon)
    request.session[WIZARD_KEY] = draft
    return RedirectResponse("/campaigns/new/schedule", status_code=303)


@router.post("/campaigns/new/schedule", dependencies=[CsrfChecked])
def choose_schedule(
    request: Request,
    viewer: CurrentViewer,
    db_session: DbSession,
    schedule: Annotated[str, Form()] = "now",
    rollout: Annotated[str, Form()] = "100",
    holdout_percent: Annotated[float, Form()] = 0.0,
    gate_delivery_min: Annotated[str, Form()] = "",
    gate_opt_out_max: Annotated[str, Form()] = "",
    gate_complaint_max: Annotated[str, Form()] = "",
    promote_winner: Annotated[bool, Form()] = False,
) -> Response:
    """Creates the campaign from the wizard's answers and plans it, then shows the review."""
    viewer.require(Role.MARKETER)
    draft = dict(request.session.get(WIZARD_KEY, {}))
    if "variants" not in draft:
        return RedirectResponse("/campaigns/new/audience", status_code=303)
    try:
        stages = [int(part) for part in rollout.replace("，", ",").split(",") if part.strip()]
        gates = gate_fields(
            delivery_min=gate_delivery_min,
            opt_out_max=gate_opt_out_max,
            complaint_max=gate_complaint_max,
            promote_winner=promote_winner,
        )
        spec = CampaignCreate(
            **draft,
            **gates,
            schedule=schedule.strip() or "now",
            rollout=stages,
            holdout=holdout_percent / 100,
        )
        campaign = campaigns.create(db_session=db_session, spec=spec)
        campaigns.plan(db_session=db_session, campaign_id=campaign.id)
    except (ValueError, campaigns.CampaignError) as error:
        db_session.rollback()
        return _step(request, viewer, "schedule", 422, error=str(error))
    request.session.pop(WIZARD_KEY, None)
    return RedirectResponse(f"/campaigns/{campaign.id}/review", status_code=303)


@router.get("/campaigns/{campaign_id}/review")
def review(
    request: Request, campaign_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Shows what the plan will do before anything is sent (its first messages go to
    members of every store, so store managers and agents do not see it)."""
    viewer.require(Role.MARKETER, Role.ANALYST)
    try:
        result = reviewing.review(db_session=db_session, campaign_id=campaign_id)
        campaign = campaigns.get(db_session=db_session, campaign_id=campaign_id)
    except campaigns.CampaignNotFound as error:
        raise NotFound(str(error)) from error
    except campaigns.CampaignStateError as error:
        raise NotFound(str(error)) from error
    return render(
        request,
        "campaigns/templates/review.html",
        viewer=viewer,
        review=result,
        summary=campaign.plan_summary or {},
        launchable=campaign.status.value == "scheduled",
    )


@router.post("/campaigns/{campaign_id}/launch", dependencies=[CsrfChecked])
def launch(
    request: Request, campaign_id: int, viewer: CurrentViewer, db_session: DbSession
) -> Response:
    """Starts sending the planned campaign."""
    viewer.require(Role.MARKETER)
    try:
        campaigns.send(db_session=db_session, campaign_id=campaign_id)
    except campaigns.CampaignNotFound as error:
        raise NotFound(str(error)) from error
    except (campaigns.CampaignError, campaigns.CampaignStateError) as error:
        db_session.rollback()
        return render(
            request, "layout/error.html", viewer=viewer, status_code=409, message=str(error)
        )
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
