"""Reading short links and their clicks: one link by code, a campaign's clicks per message
(people only, robots apart) and a member's clicks for the timeline. Never commits."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.bulk import BulkStore
from tidings.config import get_settings
from tidings.dispatch.models import Message
from tidings.tracking.links import short_url
from tidings.tracking.models import Click, ShortLink, link_message_sql

CLICK_COUNTS_SCHEMA = {
    "message_id": pl.Int64,
    "member_id": pl.Int64,
    "variant_id": pl.Int64,
    "clicks": pl.Int64,
    "robot_requests": pl.Int64,
    "first_clicked_at": pl.Datetime("us", "UTC"),
}


class LinkNotFound(LookupError):
    """No short link has this code."""


def get_by_code(*, db_session: Session, code: str) -> ShortLink:
    """Gets a short link by its code, or says that there is none."""
    link = db_session.scalars(select(ShortLink).where(ShortLink.code == code)).first()
    if link is None:
        raise LinkNotFound(
            f"no short link has code '{code}' (a code is the part after /s/ in the link)"
        )
    return link


def show(*, db_session: Session, code: str) -> dict[str, Any]:
    """A short link with its message, target and clicks (people and robots apart)."""
    link = get_by_code(db_session=db_session, code=code)
    message_id = db_session.scalar(
        select(Message.id).where(
            Message.member_id == link.member_id,
            Message.campaign_id == link.campaign_id,
            Message.step == 0,
        )
    )
    rows = db_session.execute(
        select(Click.clicked_at, Click.user_agent, Click.is_robot, Click.robot_reason)
        .where(Click.link_id == link.id)
        .order_by(Click.clicked_at, Click.id)
    ).all()
    return {
        "code": link.code,
        "url": short_url(get_settings().short_link_base, link.code),
        "target_url": link.target_url,
        "campaign_id": link.campaign_id,
        "member_id": link.member_id,
        "message_id": message_id,
        "clicks": sum(1 for row in rows if not row.is_robot),
        "robot_requests": sum(1 for row in rows if row.is_robot),
        "requests": [
            {
                "at": row.clicked_at.isoformat(),
                "user_agent": row.user_agent,
                "robot": row.robot_reason if row.is_robot else None,
            }
            for row in rows
        ],
    }


def click_counts(*, db_session: Session, campaign_id: int) -> pl.DataFrame:
    """Per message of the campaign that a link was made for: people's clicks, robots'
    requests and the first person's click (null if none); CLICK_COUNTS_SCHEMA.

    A message was clicked by its member when `clicks` > 0; robots never count there.
    """
    return BulkStore(db_session).frame(
        "SELECT m.id, l.member_id, m.variant_id,"
        " SUM(CASE WHEN c.id IS NOT NULL AND NOT c.is_robot THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN c.is_robot THEN 1 ELSE 0 END),"
        " MIN(CASE WHEN NOT c.is_robot THEN c.clicked_at END)"
        f" FROM short_links l JOIN messages m ON {link_message_sql('l', 'm')}"
        " LEFT JOIN clicks c ON c.link_id = l.id"
        " WHERE l.campaign_id = ? GROUP BY m.id, l.member_id, m.variant_id ORDER BY m.id",
        (campaign_id,),
        schema=CLICK_COUNTS_SCHEMA,
    )


def click_summary(*, db_session: Session, campaign_id: int) -> dict[str, Any]:
    """A campaign's links, the messages people clicked, their clicks, and robots by reason."""
    counts = click_counts(db_session=db_session, campaign_id=campaign_id)
    robots = db_session.execute(
        select(Click.robot_reason, func.count())
        .join(ShortLink, ShortLink.id == Click.link_id)
        .where(ShortLink.campaign_id == campaign_id, Click.is_robot.is_(True))
        .group_by(Click.robot_reason)
        .order_by(func.count().desc(), Click.robot_reason)
    ).all()
    return {
        "campaign_id": campaign_id,
        "links": counts.height,
        "clicked_messages": int((counts["clicks"] > 0).sum()),
        "clicks": int(counts["clicks"].sum()),
        "robot_requests": {str(reason): int(n) for reason, n in robots},
    }


def member_clicks(*, db_session: Session, member_id: int, limit: int) -> list[dict[str, Any]]:
    """A member's latest clicks on their links (robots' requests apart), newest first."""
    rows = db_session.execute(
        select(Click, ShortLink.code, ShortLink.campaign_id, ShortLink.target_url)
        .join(ShortLink, ShortLink.id == Click.link_id)
        .where(ShortLink.member_id == member_id)
        .order_by(Click.clicked_at.desc(), Click.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "at": click.clicked_at,
            "code": code,
            "campaign_id": campaign_id,
            "target_url": target,
            "user_agent": click.user_agent,
            "robot": click.robot_reason if click.is_robot else None,
        }
        for click, code, campaign_id, target in rows
    ]
