"""The demo's last step: the members react to the campaign just sent (clicks, orders, coupon
redemptions with a known true effect), the orders are credited, and the campaign's report is
printed with its funnel, A/B verdict, lift over the holdout, health and charts."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine, func, select

from tidings.campaigns.models import Campaign
from tidings.db import session_scope
from tidings.demo.campaign import CAMPAIGN
from tidings.demo.reactions import BASE_ORDER_RATE, ORDER_EFFECT, Reactions, simulate_reactions
from tidings.reports.service import campaign_report, render_charts
from tidings.reports.tables import print_report


def _simulated(reactions: Reactions) -> str:
    effects = ", ".join(f"{name} +{share:.0%}" for name, share in ORDER_EFFECT.items())
    return (
        f"simulated {reactions.window_end:%Y-%m-%d}: {reactions.orders:,} orders"
        f" ({reactions.holdout_orders:,} by held-out members), {reactions.clicks:,} clicks by"
        f" people and {reactions.robot_clicks:,} link previews, {reactions.redemptions:,}"
        f" coupons redeemed; true effect of a delivered message on ordering: {effects}"
        f" over a base of {BASE_ORDER_RATE:.0%}"
    )


def results_line(engine: Engine, *, charts: Path) -> str:
    """Simulates the days after the demo campaign, then reports on it; charts go to `charts`."""
    with session_scope(engine) as session:
        campaign_id = session.scalar(
            select(func.max(Campaign.id)).where(Campaign.name == CAMPAIGN.name)
        )
        if campaign_id is None:
            return "no demo campaign to report on"
        reactions = simulate_reactions(db_session=session, campaign_id=campaign_id)
    with session_scope(engine) as session:
        # As of the end of the simulated days, so that the lift's window is complete.
        report = campaign_report(
            db_session=session, campaign_id=campaign_id, now=reactions.window_end
        )
    report["charts"] = render_charts(report, charts / f"campaign-{campaign_id}")
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None, highlight=False)
    print_report(report, console, levels=())
    return escape(f"{_simulated(reactions)}\n{buffer.getvalue().rstrip()}")
