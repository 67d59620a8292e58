"""The demo's recommendations: how many members have one, the most offered products, and one
member's offer with its reason, as the refresh chose them from the chain's baskets."""

from __future__ import annotations

from sqlalchemy import Engine, desc, func, select

from tidings.db import session_scope
from tidings.members.models import Member
from tidings.profiles.models import Profile
from tidings.profiles.recommendations import get_recommendation

TOP_PRODUCTS = 3  # most offered products named in the line


def recommendation_line(engine: Engine) -> str:
    """One line: members with a recommendation, the top products, and an example's reason."""
    with session_scope(engine) as db_session:
        count = func.count(Profile.member_id)
        top = db_session.execute(
            select(Profile.recommended_product, count)
            .where(Profile.recommended_sku.is_not(None))
            .group_by(Profile.recommended_product)
            .order_by(desc(count), Profile.recommended_product)
            .limit(TOP_PRODUCTS)
        ).all()
        if not top:
            return "no member has a recommendation: no products are bought together often enough"
        total = db_session.scalar(select(count).where(Profile.recommended_sku.is_not(None)))
        example = db_session.execute(
            select(Member.code, Profile.member_id)
            .join(Member, Member.id == Profile.member_id)
            .where(Profile.recommended_product == top[0][0])
            .order_by(desc(Profile.recommendation_confidence), Profile.member_id)
            .limit(1)
        ).one()
        shown = get_recommendation(db_session=db_session, member_id=example.member_id)
    products = ", ".join(f"{name} {members:,}" for name, members in top)
    return (
        f"{total:,} members have a recommendation; most offered: {products};"
        f" e.g. {example.code}: {shown.product} ({shown.reason_zh})"
    )
