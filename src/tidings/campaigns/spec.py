"""What a campaign row means to the planner: its schedule, templates, provider's counting,
and the values it gives each member."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import polars as pl

from tidings.campaigns.models import Campaign, Variant
from tidings.campaigns.planner import CONTENT_KIND, PlanSpec, PlanVariant
from tidings.campaigns.schedule import Schedule
from tidings.config import Settings, get_settings
from tidings.content.length import MAINLAND, STANDARD, CountingScheme
from tidings.content.template import AUDIENCE_COLUMNS, prepare_template
from tidings.loyalty.offers import campaign_codes
from tidings.providers.base import UnknownProvider, get_provider
from tidings.segments.fields import FIELD_LIST
from tidings.tracking.links import link_urls


class CampaignError(ValueError):
    """A campaign as asked for cannot be made (the message says what to change)."""


def template_columns(*, coupon: bool, link: bool, expires: bool) -> list[str]:
    """The fields a campaign's templates may use: the audience's and what the campaign gives."""
    columns = [field.name for field in FIELD_LIST] + list(AUDIENCE_COLUMNS)
    given = {"coupon": coupon, "link": link, "expiry_date": expires}
    return list(dict.fromkeys(columns + [name for name, on in given.items() if on]))


def schedule_of(campaign: Campaign) -> Schedule:
    """The campaign's schedule as the planner reads it."""
    return Schedule(
        campaign.schedule_kind,
        at=campaign.scheduled_at,
        window_start=campaign.window_start,
        window_end=campaign.window_end,
    )


def counting_of(provider: str, settings: Settings) -> tuple[CountingScheme, int]:
    """How the campaign's provider counts parts, and its price per part (分)."""
    try:
        sender = get_provider(provider, settings)
    except UnknownProvider as error:
        raise CampaignError(str(error)) from None
    scheme = MAINLAND if sender.counting_scheme.startswith("chars") else STANDARD
    return scheme, sender.price_per_part_cents


def plan_spec(campaign: Campaign, variants: list[Variant], settings: Settings) -> PlanSpec:
    """Everything the planner needs to know about a campaign."""
    columns = template_columns(
        coupon=bool(campaign.coupon),
        link=bool(campaign.links),
        expires=campaign.expires_at is not None,
    )
    kind = CONTENT_KIND[campaign.kind]
    scheme, price = counting_of(campaign.provider, settings)
    return PlanSpec(
        campaign_id=campaign.id,
        kind=campaign.kind,
        offer_type=campaign.offer_type,
        variants=tuple(
            PlanVariant(
                v.id, v.name, prepare_template(v.template, kind=kind, columns=columns), v.weight
            )
            for v in variants
        ),
        holdout_share=campaign.holdout_share,
        schedule=schedule_of(campaign),
        expires_at=campaign.expires_at,
        rollout_stages=tuple(campaign.rollout_stages or [100]),
        timezone=settings.default_timezone,
        scheme=scheme,
        price_per_part_cents=price,
        category=campaign.category,
    )


def campaign_fields(audience: pl.DataFrame, campaign: Campaign, timezone: str) -> pl.DataFrame:
    """Adds the values a campaign gives each member: {coupon}, {link}, {expiry_date}.

    The seam for the loyalty and tracking domains: today every member gets the campaign's
    one code and one link; a per-member coupon code or short link is a column added here.
    """
    extra: dict[str, pl.Expr] = {}
    if campaign.coupon:
        # An offer gives each member a code of their own (issued when the plan is written).
        extra["coupon"] = (
            pl.lit(campaign_codes(audience["member_id"], campaign_id=campaign.id))
            if "offer" in campaign.coupon
            else pl.lit(str(campaign.coupon.get("code", "")))
        )
    if campaign.links:
        # Each member's own short link to the campaign's URL (tracking.links).
        urls = link_urls(audience, campaign_id=campaign.id, settings=get_settings())
        extra["link"] = pl.lit(urls)
    if campaign.expires_at is not None:
        extra["expiry_date"] = pl.lit(campaign.expires_at.astimezone(ZoneInfo(timezone)).date())
    return audience.with_columns(**extra) if extra else audience
