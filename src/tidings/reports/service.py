"""The campaign report: attributes the latest orders, then gathers the funnel per campaign,
variant, store and day, the A/B comparison with the control, the lift over the holdout and the
health of the send into one JSON-ready dict (the CLI, the API and the charts read it).

The lift window runs from the campaign's first send to the view window (3 days by default)
after its last: every order of the treated and the held-out members in it counts, credited
or not, since held-out members have no message to credit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from tidings import clock
from tidings.bulk import BulkStore
from tidings.campaigns.models import Variant
from tidings.config import Settings, get_settings
from tidings.dispatch import service as dispatch
from tidings.reports import charts, frames, health, results, stats
from tidings.tracking.credits import attribute_orders

LEVELS = {"by_variant": "variant", "by_store": "store_code", "by_day": "day", "by_step": "step"}


def campaign_report(
    *, db_session: Session, campaign_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Builds the campaign's report after crediting the orders placed since its first send."""
    settings = get_settings()
    now = now or clock.now()
    campaign = dispatch.get(db_session=db_session, campaign_id=campaign_id)
    store = BulkStore(db_session)
    first, last = frames.send_span(store, campaign_id)
    if first is not None:
        attribute_orders(db_session=db_session, since=first, now=now, settings=settings)
    outcomes = _outcomes(store, campaign_id, since=first or now, settings=settings)
    control = _control(db_session, campaign_id)
    report: dict[str, Any] = {
        "campaign": {
            "id": campaign.id,
            "name": campaign.name,
            "status": str(campaign.status),
            "kind": str(campaign.kind),
            "holdout_share": float(campaign.holdout_share),
            "control": control,
        },
        "funnel": results.funnel(outcomes),
    }
    for key, column in LEVELS.items():
        rows = results.funnel_rows(outcomes, [column])
        for row in rows:
            if column == "day" and row["day"] is not None:
                row["day"] = row["day"].isoformat()
        report[key] = rows
    # Variants are arms of the first send; later steps have one template each.
    report["ab"] = _ab(outcomes.filter(pl.col("step") == 0), control)
    report["lift"] = _lift(store, campaign_id, outcomes, (first, last), now=now, settings=settings)
    report["health"] = _health(db_session, campaign_id)
    return report


def _outcomes(
    store: BulkStore, campaign_id: int, *, since: datetime, settings: Settings
) -> pl.DataFrame:
    return results.message_outcomes(
        frames.messages(store, campaign_id),
        clicks=frames.clicks(store, campaign_id),
        replies=frames.replies(store, campaign_id),
        opt_outs=frames.opt_outs(store, campaign_id, since),
        complaints=frames.complaints(store, since),
        credits=frames.credits(store, campaign_id),
        window=timedelta(days=settings.attribution_click_window_days),
        timezone=settings.default_timezone,
    )


def _control(db_session: Session, campaign_id: int) -> str | None:
    """The control variant's name: the one marked so, else the first by name (A)."""
    variants = db_session.query(Variant).filter(Variant.campaign_id == campaign_id).all()
    marked = [v.name for v in variants if v.is_control]
    names = marked or sorted(v.name for v in variants)
    return names[0] if names else None


def _ab(outcomes: pl.DataFrame, control: str | None) -> list[dict[str, Any]]:
    """Each variant against the control; empty until the control and another variant sent."""
    arms = results.ab_arms(outcomes)
    if control is None or arms.height < 2 or control not in arms["variant"].to_list():
        return []
    return stats.ab_summary(arms, control=control)


def _lift(
    store: BulkStore,
    campaign_id: int,
    outcomes: pl.DataFrame,
    span: tuple[datetime | None, datetime | None],
    *,
    now: datetime,
    settings: Settings,
) -> dict[str, Any]:
    """Treated minus held-out members over the lift window (see the module's docstring)."""
    first, last = span
    if first is None or last is None:
        lift = stats.holdout_lift(results.lift_members(outcomes, _no_orders()))
        return {**lift, "window": None}
    end = last + timedelta(days=settings.attribution_view_window_days)
    orders = frames.audience_orders(store, campaign_id, first, end)
    lift = stats.holdout_lift(results.lift_members(outcomes, orders))
    window = {"start": first.isoformat(), "end": end.isoformat(), "complete": now >= end}
    return {**lift, "window": window}


def _no_orders() -> pl.DataFrame:
    return pl.DataFrame(schema={"member_id": pl.Int64, "amount_cents": pl.Int64})


def _health(db_session: Session, campaign_id: int) -> dict[str, Any]:
    """The send's health against its thresholds, from the health checks."""
    return health.campaign_health(db_session=db_session, campaign_id=campaign_id)


def render_charts(report: dict[str, Any], folder: Path) -> dict[str, str]:
    """Renders the report's charts as PNG files in `folder`; returns their paths by name."""
    return charts.campaign_charts(report, folder)
