"""What the campaign API and commands take in and give out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from tidings.campaigns.models import CampaignKind
from tidings.http import MAX_CENTS

MAX_COUPONS_PER_MEMBER = 10  # one campaign's coupons for one member: more is a mistyped number


class VariantCreate(BaseModel):
    """One arm of an A/B/n test: its template and its weight."""

    template: str = Field(min_length=1, description="Message template, e.g. '{surname}，...'")
    weight: int = Field(1, ge=1, description="Share of the audience, relative to the others.")


class CouponOffer(BaseModel):
    """A coupon each planned member gets, with a code of their own shown by {coupon}: a value
    off (cents) or a percentage off, a minimum spend and the days it stays valid."""

    value_cents: int | None = Field(
        None, gt=0, le=MAX_CENTS, description="Cents off, e.g. 1000 (10 yuan)."
    )
    discount_percent: int | None = Field(None, ge=1, le=100, description="Percent off.")
    min_spend_cents: int = Field(
        0, ge=0, le=MAX_CENTS, description="Least an order must be, in cents."
    )
    valid_days: int | None = Field(
        30, ge=1, le=3660, description="Days valid from planning (None: ever)."
    )
    per_member: int = Field(
        1, ge=1, le=MAX_COUPONS_PER_MEMBER, description="Coupons per member ({coupon}: the first)."
    )

    @model_validator(mode="after")
    def _one_discount(self) -> CouponOffer:
        if (self.value_cents is None) == (self.discount_percent is None):
            raise ValueError("give the coupon either value_cents or discount_percent, not both")
        return self


class StepCreate(BaseModel):
    """A later step: after a delay to those of the step before who reacted (or did not), or at
    a moment (a countdown to a date) to an audience rule of its own."""

    template: str = Field(min_length=1, description="The step's message template.")
    after: str | None = Field(None, description="Delay after the step before: 2d, 12h, 30m.")
    at: datetime | None = Field(None, description="Or the moment it goes (ISO, with a zone).")
    reaction: str | None = Field(
        None,
        description="Who of the step before: all, clicked, not-clicked, converted,"
        " not-converted, replied, not-replied.",
    )
    rule: str | None = Field(None, description="An audience rule of its own (countdowns).")

    @model_validator(mode="after")
    def _one_time(self) -> StepCreate:
        if (self.after is None) == (self.at is None):
            raise ValueError("give a step either a delay (after) or a moment (at), not both")
        return self


class CampaignCreate(BaseModel):
    """A new campaign; variants[0] is variant A."""

    name: str = Field(min_length=1, max_length=200)
    kind: CampaignKind = CampaignKind.MARKETING
    segment: str | None = Field(None, description="A saved segment's name (or give a rule).")
    rule: str | None = Field(None, description="A segment rule (or give a saved segment).")
    variants: list[VariantCreate] = Field(min_length=1, max_length=26)
    holdout: float = Field(0.0, ge=0.0, lt=1.0, description="Share kept out on purpose.")
    offer_type: str | None = Field(None, max_length=64, description="For offer cool-downs.")
    category: str | None = Field(
        None,
        max_length=32,
        description="Kind of message (promotions, new_arrivals, tips, surveys): members who"
        " declined it are skipped.",
    )
    schedule: str = Field("now", description="now | ISO time | best-hour[:DATE] | spread:FROM-TO")
    expires: str | None = Field(None, description="ISO time or a duration after now: 2d, 12h.")
    provider: str | None = Field(None, description="Provider name (default from settings).")
    rollout: list[int] = Field(default_factory=lambda: [100], description="e.g. [1, 10, 100]")
    gates: dict[str, float] | None = Field(
        None, description="Override gates: delivery_min, opt_out_max, complaint_max, ..."
    )
    promote_winner: bool = Field(
        False,
        description="When a rollout stage is released and a variant beats the control on"
        " orders (p < 0.05), send the later stages with that variant.",
    )
    coupon: str | None = Field(None, description="A coupon code for {coupon} (same for all).")
    coupon_offer: CouponOffer | None = Field(
        None, description="A coupon per member for {coupon}, issued when their message is sent."
    )
    link: str | None = Field(
        None,
        description="The campaign's URL: {link} shows each member a short link of their own"
        " that leads there (with UTM parameters) and counts the clicks.",
    )
    link_utm: bool = Field(True, description="Add utm_source/medium/campaign/content to it.")
    every: str | None = Field(
        None,
        max_length=100,
        description="Recur: 'every wed 10:00', 'every day 08:30', 'monthly 1 09:00'; each"
        " occurrence makes and sends a run of its own.",
    )
    steps: list[StepCreate] = Field(
        default_factory=list, max_length=10, description="Follow-up or countdown steps, in order."
    )
    utm_medium: str | None = Field(None, max_length=100, description="Default: the setting.")
    utm_campaign: str | None = Field(
        None, max_length=100, description="Default: the campaign's id."
    )

    @model_validator(mode="after")
    def _one_coupon(self) -> CampaignCreate:
        if self.coupon is not None and self.coupon_offer is not None:
            raise ValueError("give one fixed coupon code or a coupon offer, not both")
        return self


class CampaignCreated(BaseModel):
    """The id of a new campaign."""

    id: int


class PlanResult(BaseModel):
    """What planning made of the audience."""

    audience: int
    holdout: int
    planned: int
    skipped: dict[str, int]
    segments_total: int
    cost_cents: int


class SendResult(BaseModel):
    """Where a campaign's messages are after a send (and its wait, if any)."""

    status: str
    queued: int
    submitted: int
    delivered: int
    failed: int
    expired: int
    unknown: int


class CampaignStatusOut(BaseModel):
    """A campaign's state, rollout and message counts."""

    id: int
    name: str
    kind: str
    status: str
    status_reason: str | None
    schedule: str
    rollout_stages: list[int]
    rollout_stage: int
    rollout_report: list[dict[str, Any]]
    messages: dict[str, int]
    plan: dict[str, Any] | None
    planned_at: datetime | None


class Explanation(BaseModel):
    """Why a member does or does not get a campaign, and when."""

    member_id: int
    campaign_id: int
    state: str | None
    explanation: str


class StepOut(BaseModel):
    """A campaign step: when it goes, to whom, and what its plan made."""

    number: int
    when: str
    audience: str
    template: str
    planned_at: datetime | None
    plan: dict[str, Any] | None
