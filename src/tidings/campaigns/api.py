"""REST endpoints of the campaigns domain: create, plan, review, send, steer, explain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from tidings.campaigns import followups, recurring, service
from tidings.campaigns import review as reviewing
from tidings.campaigns.explain import MemberNotFound, explain_member
from tidings.campaigns.models import CampaignStatus
from tidings.campaigns.schemas import (
    CampaignCreate,
    CampaignCreated,
    CampaignStatusOut,
    Explanation,
    PlanResult,
    SendResult,
    StepOut,
)
from tidings.http import DbSession, Page, PagingQuery, RowId, problem, require_scope
from tidings.segments.api import rule_problem
from tidings.segments.lexer import RuleError

router = APIRouter(tags=["campaigns"])
T = TypeVar("T")
Problems: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such campaign (or member)."},
    409: {"description": "The campaign is not in a state that allows this."},
    422: {"description": "The request cannot be used as given; the detail says why."},
}


def _answer(db_session: Session, action: Callable[[Session], T]) -> T | JSONResponse:
    """Runs a service call and turns the errors a person can cause into problem+json."""
    try:
        return action(db_session)
    except service.CampaignNotFound as error:
        db_session.rollback()
        return problem(404, "Campaign not found", str(error))
    except MemberNotFound as error:
        db_session.rollback()
        return problem(404, "Member not found", str(error))
    except service.CampaignStateError as error:
        db_session.rollback()
        return problem(409, "Campaign state", str(error))
    except service.CampaignError as error:
        db_session.rollback()
        return problem(422, "Invalid campaign", str(error))


@router.post(
    "/campaigns",
    response_model=CampaignCreated,
    status_code=201,
    responses=Problems,
    dependencies=[require_scope("campaigns:write")],
)
def create_campaign(body: CampaignCreate, db_session: DbSession) -> Any:
    """Creates a draft campaign after checking its audience, templates, schedule and rollout."""
    try:
        result = _answer(db_session, lambda s: service.create(db_session=s, spec=body))
    except RuleError as error:
        db_session.rollback()
        return rule_problem(error, body.rule or "")
    if isinstance(result, JSONResponse):
        return result
    return CampaignCreated(id=result.id)


@router.get(
    "/campaigns",
    response_model=Page[dict[str, Any]],
    dependencies=[require_scope("campaigns:read")],
)
def list_campaigns(
    request: Request,
    db_session: DbSession,
    paging: PagingQuery,
    status: CampaignStatus | None = Query(None, description="Only campaigns in this state."),
) -> Page[dict[str, Any]]:
    """Campaigns, newest first, with their status and message count, a page at a time."""
    rows = service.list_campaigns(db_session=db_session)
    if status is not None:
        rows = [row for row in rows if row["status"] == status.value]
    start = (paging.page - 1) * paging.per_page
    return Page[dict[str, Any]](
        items=rows[start : start + paging.per_page],
        page=paging.page,
        per_page=paging.per_page,
        next=paging.next_link(request, len(rows) > start + paging.per_page),
    )


@router.get(
    "/campaigns/{campaign_id}",
    response_model=CampaignStatusOut,
    responses=Problems,
    dependencies=[require_scope("campaigns:read")],
)
def campaign_status(campaign_id: RowId, db_session: DbSession) -> Any:
    """Shows a campaign's status, rollout progress and gate checks, and its messages by state."""
    return _answer(db_session, lambda s: service.status(db_session=s, campaign_id=campaign_id))


@router.post(
    "/campaigns/{campaign_id}/plan",
    response_model=PlanResult,
    responses=Problems,
    dependencies=[require_scope("campaigns:write")],
)
def plan_campaign(campaign_id: RowId, db_session: DbSession) -> Any:
    """Plans (or plans again) the campaign's messages."""
    return _answer(db_session, lambda s: service.plan(db_session=s, campaign_id=campaign_id))


@router.get(
    "/campaigns/{campaign_id}/review",
    responses=Problems,
    dependencies=[require_scope("campaigns:read")],
)
def review_campaign(campaign_id: RowId, db_session: DbSession) -> Any:
    """What the plan will do: audience, holdout, variants, skips, parts, cost, findings."""
    return _answer(db_session, lambda s: reviewing.review(db_session=s, campaign_id=campaign_id))


def _counts(db_session: Session, campaign_id: int) -> SendResult:
    counts = service.outcome_counts(db_session=db_session, campaign_id=campaign_id)
    campaign = service.get(db_session=db_session, campaign_id=campaign_id)
    return SendResult(status=str(campaign.status), **counts)


@router.post(
    "/campaigns/{campaign_id}/send",
    response_model=SendResult,
    responses=Problems,
    dependencies=[require_scope("campaigns:write")],
)
def send_campaign(campaign_id: RowId, db_session: DbSession) -> Any:
    """Starts sending: the campaign runs and its first rollout stage is queued."""

    def action(s: Session) -> SendResult:
        service.send(db_session=s, campaign_id=campaign_id)
        return _counts(s, campaign_id)

    return _answer(db_session, action)


def _steer(db_session: Session, campaign_id: int, step: Callable[[Session], object]) -> Any:
    def action(s: Session) -> dict[str, Any]:
        step(s)
        return service.status(db_session=s, campaign_id=campaign_id)

    return _answer(db_session, action)


@router.post(
    "/campaigns/{campaign_id}/pause",
    response_model=CampaignStatusOut,
    responses=Problems,
    dependencies=[require_scope("campaigns:write")],
)
def pause_campaign(campaign_id: RowId, db_session: DbSession) -> Any:
    """Pauses the campaign; its queued messages wait until it resumes."""
    return _steer(
        db_session, campaign_id, lambda s: service.pause(db_session=s, campaign_id=campaign_id)
    )


@router.post(
    "/campaigns/{campaign_id}/resume",
    response_model=CampaignStatusOut,
    responses=Problems,
    dependencies=[require_scope("campaigns:write")],
)
def resume_campaign(campaign_id: RowId, db_session: DbSession) -> Any:
    """Resumes a paused campaign; after a failed gate, this releases the next stage."""
    return _steer(
        db_session, campaign_id, lambda s: service.resume(db_session=s, campaign_id=campaign_id)
    )


@router.post(
    "/campaigns/{campaign_id}/cancel",
    response_model=CampaignStatusOut,
    responses=Problems,
    dependencies=[require_scope("campaigns:write")],
)
def cancel_campaign(campaign_id: RowId, db_session: DbSession) -> Any:
    """Cancels the campaign and every message of it not yet handed to a provider."""
    return _steer(
        db_session, campaign_id, lambda s: service.cancel(db_session=s, campaign_id=campaign_id)
    )


@router.get(
    "/campaigns/{campaign_id}/members/{member_id}/explanation",
    response_model=Explanation,
    responses=Problems,
    dependencies=[require_scope("campaigns:read")],
)
def explain(campaign_id: RowId, member_id: RowId, db_session: DbSession) -> Any:
    """Why this member does or does not get this campaign, and when, in one sentence."""
    return _answer(
        db_session,
        lambda s: explain_member(db_session=s, campaign_id=campaign_id, member_id=member_id),
    )


@router.get(
    "/campaigns/{campaign_id}/steps",
    response_model=list[StepOut],
    responses=Problems,
    dependencies=[require_scope("campaigns:read")],
)
def campaign_steps(campaign_id: RowId, db_session: DbSession) -> Any:
    """The campaign's follow-up and countdown steps: when, to whom, and what each plan made."""

    def action(s: Session) -> list[dict[str, Any]]:
        service.get(db_session=s, campaign_id=campaign_id)
        return followups.list_steps(db_session=s, campaign_id=campaign_id)

    return _answer(db_session, action)


@router.get(
    "/campaigns/{campaign_id}/runs",
    responses=Problems,
    dependencies=[require_scope("campaigns:read")],
)
def campaign_runs(campaign_id: RowId, db_session: DbSession) -> Any:
    """A recurring campaign's runs, one per occurrence, newest first."""
    return _answer(db_session, lambda s: recurring.runs(db_session=s, campaign_id=campaign_id))
