"""What a campaign row means to the planner: its schedule, templates, provider's counting,
and the values it gives each member."""

from __future__ import annotations

from collections.abc import Mapping
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


def campaign_fields(
    audience: pl.DataFrame,
    campaign: Campaign,
    timezone: str,
    shows: Mapping[str, pl.Expr] | None = None,
) -> pl.DataFrame:
    """Adds the values a campaign gives each member: {coupon}, {link}, {expiry_date}.

    The seam for the loyalty and tracking domains: an offer gives each member a coupon code
    of their own and a link a short link of their own (both keyed hashes, so the same on
    every plan). With `shows` (field -> whether a row's message shows it), codes and links
    are derived only for those rows; the others get null.
    """
    extra: dict[str, pl.Expr] = {}
    if campaign.coupon:
        if "offer" in campaign.coupon:  # issued when the message's stage is released
            rows = _showing(audience, shows, "coupon")
            codes = campaign_codes(rows["member_id"], campaign_id=campaign.id)
            audience = _joined(audience, rows.select("member_id", codes))
        else:
            extra["coupon"] = pl.lit(str(campaign.coupon.get("code", "")))
    if campaign.links:
        rows = _showing(audience, shows, "link")
        urls = link_urls(rows, campaign_id=campaign.id, settings=get_settings())
        audience = _joined(audience, rows.select("member_id", urls.alias("link")))
    if campaign.expires_at is not None:
        extra["expiry_date"] = pl.lit(campaign.expires_at.astimezone(ZoneInfo(timezone)).date())
    return audience.with_columns(**extra) if extra else audience


def _showing(
    audience: pl.DataFrame, shows: Mapping[str, pl.Expr] | None, field: str
) -> pl.DataFrame:
    """The rows whose message shows `field` (every row without `shows`)."""
    if shows is None or field not in shows:
        return audience
    return audience.filter(shows[field])


def _joined(audience: pl.DataFrame, values: pl.DataFrame) -> pl.DataFrame:
    """`audience` with the columns of `values` (by member_id), null where it has no row."""
    return audience.join(values, on="member_id", how="left", maintain_order="left")
