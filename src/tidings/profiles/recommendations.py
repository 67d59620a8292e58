"""A member's stored recommendation, read for `tidings profiles recommend` and the API.

The recommendation is chosen by a profile refresh (`tidings.profiles.copurchase`) and kept on
the member's profile; this module reads it back and words its reason.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tidings.members.models import Member
from tidings.profiles.copurchase import reason
from tidings.profiles.models import Profile
from tidings.profiles.schemas import Recommendation


class RecommendationError(LookupError):
    """The member, their profile or their recommendation does not exist."""


def get_recommendation(*, db_session: Session, member_id: int) -> Recommendation:
    """Gets a member's recommendation; raises RecommendationError saying what is missing."""
    member = db_session.get(Member, member_id)
    if member is None or member.erased_at is not None:
        raise RecommendationError(f"no member {member_id}")
    profile = db_session.get(Profile, member_id)
    if profile is None:
        raise RecommendationError(
            f"member {member_id} has no profile yet; run `tidings profiles refresh`"
        )
    if profile.recommended_sku is None:
        raise RecommendationError(
            f"member {member_id} has no recommendation as of {profile.as_of.isoformat()}:"
            " none of their purchases is bought with another product or category often enough"
        )
    basis = profile.recommendation_basis or "product"
    item = (
        profile.recommended_product if basis == "product" else profile.recommended_category
    ) or profile.recommended_sku
    because = profile.recommendation_because or ""
    confidence = profile.recommendation_confidence or 0.0
    return Recommendation(
        member_id=member_id,
        as_of=profile.as_of,
        sku=profile.recommended_sku,
        product=profile.recommended_product or profile.recommended_sku,
        category=profile.recommended_category,
        basis="category" if basis == "category" else "product",
        because=because,
        confidence=confidence,
        lift=profile.recommendation_lift or 0.0,
        reason_zh=reason(
            basis=basis, because=because, item=item, confidence=confidence, language="zh"
        ),
        reason_en=reason(
            basis=basis, because=because, item=item, confidence=confidence, language="en"
        ),
    )
