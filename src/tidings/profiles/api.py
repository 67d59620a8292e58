"""REST endpoints of profiles: a member's recommendation and its reason."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from tidings.http import DbSession, RowId, require_scope
from tidings.profiles.recommendations import RecommendationError, get_recommendation
from tidings.profiles.schemas import Recommendation

router = APIRouter(tags=["profiles"])


@router.get("/members/{member_id}/recommendation", dependencies=[require_scope("members:read")])
def recommendation(member_id: RowId, db_session: DbSession) -> Recommendation:
    """The product to offer the member next, its category and why (from the last refresh)."""
    try:
        return get_recommendation(db_session=db_session, member_id=member_id)
    except RecommendationError as error:
        raise HTTPException(404, str(error)) from error
