"""The demo's campaign: plan one for the members who agreed to marketing, review it, and send
it through the simulator in stages, as an operator would on a real day."""

from __future__ import annotations

import io
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

from tidings import clock
from tidings.campaigns import review as reviewing
from tidings.campaigns import service
from tidings.campaigns.cli import print_review, wait_until_settled
from tidings.campaigns.schemas import CampaignCreate, CouponOffer, VariantCreate
from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.dispatch.models import MessageKind
from tidings.dispatch.sendwindow import DailyWindow, next_allowed
from tidings.dispatch.worker import Worker

SEND_WAIT = 180.0  # seconds the demo waits for the campaign to go out
# Receipts come within seconds rather than the simulator's usual 1-20 s, so the demo ends soon.
DEMO_RECEIPT_DELAY = "0.2-2"
CAMPAIGN = CampaignCreate(
    name="周末鲜果节",
    rule="consent == true",
    variants=[
        VariantCreate(
            template="{surname}，周末鲜果节：{store|门店}榴莲、车厘子满99减20，券{coupon} {link}",
            weight=1,
        ),
        VariantCreate(
            template="{name|会员}您好，周末鲜果节会员专享水果8折，券{coupon} {link}", weight=1
        ),
    ],
    # Each member's own short link and coupon, so the report counts who clicked (robots
    # apart) and which orders the coupon brought.
    link="https://shop.example.cn/fruit-weekend",
    coupon_offer=CouponOffer(value_cents=2_000, min_spend_cents=9_900, valid_days=7),
    holdout=0.1,
    offer_type="fruit_weekend",
    expires="1d",
    rollout=[1, 10, 100],
    # The simulator delivers about 97% by default, below the 98% production gate; and a demo
    # stage of 1% is a few dozen members, so a few receipts are enough to judge it.
    gates={"delivery_min": 0.95, "min_receipts": 5},
)


def _send_moment(settings: Settings, now: datetime) -> datetime:
    """The first moment from `now` when the whole demo send fits in the brand's send window:
    run in the evening, the demo's day moves on to the next morning's window."""

    def allowed(moment: datetime) -> datetime:
        return next_allowed(
            kind=MessageKind.MARKETING,
            timezone=settings.default_timezone,
            now=moment,
            send_window=DailyWindow.parse(settings.send_window),
            quiet_hours=DailyWindow.parse_optional(settings.quiet_hours),
        )

    start = allowed(now)
    end = start + timedelta(seconds=SEND_WAIT)
    return start if allowed(end) == end else allowed(end)


def run_campaign(engine: Engine) -> tuple[str, dict[str, Any]]:
    """Creates, plans, reviews and sends the demo campaign, in the next send window when run
    outside one; returns the review as text and the send's counts."""
    now = clock.now()
    ahead = _send_moment(get_settings(), now) - now
    with clock.shifted(ahead) if ahead else nullcontext():
        return _send_campaign(engine)


def _send_campaign(engine: Engine) -> tuple[str, dict[str, Any]]:
    with session_scope(engine) as session:
        campaign_id = service.create(db_session=session, spec=CAMPAIGN).id
        service.plan(db_session=session, campaign_id=campaign_id)
    with session_scope(engine) as session:
        review = reviewing.review(db_session=session, campaign_id=campaign_id, first=3)
        service.send(db_session=session, campaign_id=campaign_id)
    settings = get_settings().model_copy(update={"simulator_receipt_delay": DEMO_RECEIPT_DELAY})
    wait_until_settled(
        engine, campaign_id, timeout=SEND_WAIT, worker=lambda: Worker(engine, settings=settings)
    )
    with session_scope(engine) as session:
        counts = service.outcome_counts(db_session=session, campaign_id=campaign_id)
        status = service.status(db_session=session, campaign_id=campaign_id)
    buffer = io.StringIO()
    print_review(review, Console(file=buffer, width=110, color_system=None, highlight=False))
    results = {
        "id": campaign_id,
        "status": status["status"],
        "reason": status["status_reason"],
        **counts,
    }
    return buffer.getvalue(), results


def campaign_line(engine: Engine) -> str:
    """The demo step's report: the review, then what the send did."""
    text, results = run_campaign(engine)
    why = f" ({results['reason']})" if results["reason"] else ""
    sent = (
        f"campaign {results['id']} {results['status']}{why}: {results['submitted']:,} handed"
        " to the"
        f" simulator, {results['delivered']:,} delivered, {results['failed']:,} failed,"
        f" {results['expired']:,} expired, {results['queued']:,} still queued"
    )
    return escape(f"{sent}\n{text.rstrip()}")
