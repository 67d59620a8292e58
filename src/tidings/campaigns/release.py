"""What a campaign gives its members when their messages are released to the dispatcher.

A plan only derives each member's coupon code and short link (keyed hashes, see
`campaigns.spec.campaign_fields`) and shows them in the text. The coupons and links
themselves are written here, in bulk, just before a rollout stage's messages are queued.
So a coupon or a link exists only for a member who is sent it: a stage that a failing gate
holds back issues none, nor does a campaign cancelled before it was sent, and planning a
million members writes their messages alone.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore
from tidings.campaigns.models import Campaign, Variant
from tidings.campaigns.spec import plan_spec
from tidings.config import get_settings
from tidings.dispatch.models import MessageState
from tidings.loyalty import offers
from tidings.tracking import links


def issue_shown(db_session: Session, campaign: Campaign, *, now: datetime) -> None:
    """Issues the coupons and writes the short links that the campaign's planned first
    messages of its stages so far (up to `campaign.rollout_stage`) show."""
    terms = offers.terms_of(campaign.coupon)
    if terms is None and not campaign.links:
        return
    variants = db_session.scalars(
        select(Variant).where(Variant.campaign_id == campaign.id).order_by(Variant.id)
    ).all()
    spec = plan_spec(campaign, list(variants), get_settings())
    schema: dict[str, type[pl.DataType]] = {"member_id": pl.Int64, "variant_id": pl.Int64}
    if campaign.links:
        schema["text"] = pl.String
    messages = BulkStore(db_session).frame(
        f"SELECT {', '.join(schema)} FROM messages WHERE campaign_id = ? AND step = 0"
        " AND state = ? AND rollout_stage <= ? AND member_id IS NOT NULL",
        (campaign.id, MessageState.PLANNED.value, campaign.rollout_stage),
        schema=schema,
    )
    if campaign.links:
        names = {variant.id: variant.name for variant in spec.variants}
        links.write_shown(db_session, campaign=campaign, variants=names, messages=messages, now=now)
    if terms is not None:
        members = offers.shown_coupons(messages, spec.variants)["member_id"]
        offers.issue_shown(
            db_session=db_session,
            campaign_id=campaign.id,
            terms=terms,
            plan=members.to_frame().with_columns(state=pl.lit(MessageState.PLANNED.value)),
            codes=pl.DataFrame([members, offers.campaign_codes(members, campaign_id=campaign.id)]),
            now=now,
        )
