"""The console's dashboard figures: sends, delivery, cost, clicks, conversions and revenue by
day, the latest health breaches, running campaigns and the ticket queue. Each figure is one
grouped query over an index, so the page answers quickly on a store of millions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from tidings.campaigns import service as campaigns
from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.dispatch.models import HANDED_OVER, Message, MessageState
from tidings.inbound import tickets
from tidings.inbound.models import Ticket, TicketStatus
from tidings.members.models import Member
from tidings.reports.models import HealthBreach
from tidings.tracking.models import Attribution, Click, ShortLink

DAYS = 14  # days the dashboard's charts cover
LATEST_BREACHES = 10
# Days are UTC days: a store's sending window (08:00-20:00 in China) falls within one.
ByDay = dict[date, tuple[int, ...]]


def _days(today: date, days: int) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def _by_day(rows: Any) -> ByDay:
    found: ByDay = {}
    for day, *values in rows:
        key = day if isinstance(day, date) else date.fromisoformat(str(day))
        found[key] = tuple(int(value or 0) for value in values)
    return found


def _sends(db_session: Session, since: datetime, store_id: int | None) -> ByDay:
    day = func.date(Message.send_at)
    delivered = func.sum(case((Message.state == MessageState.DELIVERED, 1), else_=0))
    cost = func.sum(Message.cost_cents)
    # Only messages handed to a provider count, and only they are in the send time index
    # (members, joined for a store, have no state of their own).
    query = (
        select(day, func.count(), delivered, cost)
        .where(Message.send_at >= since, text(HANDED_OVER))
        .group_by(day)
    )
    if store_id is not None:
        query = query.join(Member, Member.id == Message.member_id).where(
            Member.store_id == store_id
        )
    return _by_day(db_session.execute(query))


def _clicks(db_session: Session, since: datetime, store_id: int | None) -> ByDay:
    day = func.date(Click.clicked_at)
    query = (
        select(day, func.count())
        .where(Click.clicked_at >= since, Click.is_robot.is_(False))
        .group_by(day)
    )
    if store_id is not None:
        query = (
            query.join(ShortLink, ShortLink.id == Click.link_id)
            .join(Member, Member.id == ShortLink.member_id)
            .where(Member.store_id == store_id)
        )
    return _by_day(db_session.execute(query))


def _conversions(db_session: Session, since: datetime, store_id: int | None) -> ByDay:
    day = func.date(Attribution.ordered_at)
    query = (
        select(day, func.count(), func.sum(Attribution.revenue_cents))
        .where(Attribution.ordered_at >= since)
        .group_by(day)
    )
    if store_id is not None:
        query = query.join(Member, Member.id == Attribution.member_id).where(
            Member.store_id == store_id
        )
    return _by_day(db_session.execute(query))


def daily(
    *, db_session: Session, now: datetime, store_id: int | None = None, days: int = DAYS
) -> list[dict[str, Any]]:
    """One row per day of the last `days`: sent, delivered, cost, clicks, conversions, revenue."""
    dates = _days(now.date(), days)
    since = datetime.combine(dates[0], datetime.min.time(), tzinfo=now.tzinfo)
    sends = _sends(db_session, since, store_id)
    clicks = _clicks(db_session, since, store_id)
    conversions = _conversions(db_session, since, store_id)
    rows = []
    for day in dates:
        sent, delivered, cost = sends.get(day, (0, 0, 0))
        converted, revenue = conversions.get(day, (0, 0))
        rows.append(
            {
                "day": day.isoformat(),
                "sent": sent,
                "delivered": delivered,
                "cost_cents": cost,
                "clicks": clicks.get(day, (0,))[0],
                "conversions": converted,
                "revenue_cents": revenue,
            }
        )
    return rows


def latest_breaches(*, db_session: Session, limit: int = LATEST_BREACHES) -> list[HealthBreach]:
    """The newest health breaches."""
    query = select(HealthBreach).order_by(HealthBreach.id.desc()).limit(limit)
    return list(db_session.scalars(query))


def running_campaigns(*, db_session: Session) -> list[dict[str, Any]]:
    """Campaigns scheduled, running or paused, with their message counts."""
    live = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
    ids = db_session.scalars(
        select(Campaign.id).where(Campaign.status.in_(live)).order_by(Campaign.id.desc())
    )
    return [campaigns.status(db_session=db_session, campaign_id=i) for i in ids]


def ticket_counts(*, db_session: Session, store_id: int | None = None) -> dict[str, int]:
    """Tickets by status and how many breached their deadline (of one store, if given)."""
    if store_id is None:
        return tickets.counts(db_session=db_session)
    mine = Ticket.store_id == store_id
    rows = db_session.execute(
        select(Ticket.status, func.count()).where(mine).group_by(Ticket.status)
    )
    found = {str(status): int(number) for status, number in rows}
    result = {status.value: found.get(status.value, 0) for status in TicketStatus}
    breached = select(func.count()).where(mine, Ticket.breached.is_(True))
    result["breached"] = int(db_session.scalar(breached) or 0)
    return result
