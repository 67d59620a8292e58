"""Claims of due messages with a lease, and the step that marks a claim `submitting`.

On PostgreSQL any number of workers claim at once: the UPDATE picks its rows through
`SELECT ... FOR UPDATE SKIP LOCKED`, so two claims never share a row. SQLite has one writer
at a time; within a process a lock makes the claimer single, and the UPDATE ... RETURNING
takes and returns the rows in one statement.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.db import is_sqlite
from tidings.dispatch.models import Message, MessageKind, MessageState, sources

messages: Table = Message.__table__  # type: ignore[assignment]
campaigns: Table = Campaign.__table__  # type: ignore[assignment]
_sqlite_claimer = threading.Lock()


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message leased to one worker, with what it needs to send it."""

    id: int
    phone: str
    text: str
    parts: int
    kind: MessageKind
    campaign_id: int | None
    provider: str
    timezone: str | None
    expires_at: datetime | None
    attempts: int


def campaign_running() -> ColumnElement[bool]:
    """Messages of a campaign go only while it runs; trigger and one-off messages have none."""
    running = select(campaigns.c.id).where(campaigns.c.status == CampaignStatus.RUNNING)
    return or_(messages.c.campaign_id.is_(None), messages.c.campaign_id.in_(running))


def claim_due(
    *, db_session: Session, owner: str, limit: int, lease: float, now: datetime
) -> list[ClaimedMessage]:
    """Leases up to `limit` due messages to `owner` for `lease` seconds, most urgent first."""
    due = (
        select(messages.c.id)
        .where(
            messages.c.state == MessageState.QUEUED,
            messages.c.send_at <= now,
            or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
            campaign_running(),
        )
        .order_by(messages.c.priority, messages.c.send_at, messages.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    sqlite = is_sqlite(db_session)
    # PostgreSQL may run an IN (subquery) more than once, and each run would lock another
    # LIMIT of rows; a CTE runs once. SQLite runs the subquery once and has no row locks.
    picked = (
        messages.c.id.in_(due.scalar_subquery()) if sqlite else messages.c.id == due.cte("due").c.id
    )
    statement = (
        update(messages)
        .where(picked, messages.c.state == MessageState.QUEUED)
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease), updated_at=now)
        .returning(
            messages.c.id,
            messages.c.phone,
            messages.c.text,
            messages.c.parts,
            messages.c.kind,
            messages.c.campaign_id,
            messages.c.provider,
            messages.c.timezone,
            messages.c.expires_at,
            messages.c.attempts,
        )
    )
    if sqlite:
        with _sqlite_claimer:
            rows = db_session.execute(statement).all()
    else:
        rows = db_session.execute(statement).all()
    claimed = [ClaimedMessage(*row) for row in rows]
    claimed.sort(key=lambda message: message.id)
    return claimed


def mark_submitting(
    *, db_session: Session, owner: str, ids: list[int], lease: float, now: datetime
) -> set[int]:
    """Moves `owner`'s claimed messages to `submitting` and returns the ids it moved.

    A message whose campaign was paused or cancelled since the claim, or whose lease another
    worker took over, is not moved and so not sent. The caller commits before sending.
    """
    if not ids:
        return set()
    statement = (
        update(messages)
        .where(
            messages.c.id.in_(bindparam("ids", expanding=True)),
            messages.c.state.in_(sources(MessageState.SUBMITTING)),
            messages.c.lease_owner == owner,
            campaign_running(),
        )
        .values(
            state=MessageState.SUBMITTING,
            attempts=messages.c.attempts + 1,
            lease_until=now + timedelta(seconds=lease),
            updated_at=now,
        )
        .returning(messages.c.id)
    )
    return set(db_session.execute(statement, {"ids": ids}).scalars())


def release(*, db_session: Session, owner: str, ids: list[int], now: datetime) -> None:
    """Gives back claimed messages that were not sent, so they can be claimed at once."""
    if ids:
        db_session.execute(
            update(messages)
            .where(
                messages.c.id.in_(ids),
                messages.c.state == MessageState.QUEUED,
                messages.c.lease_owner == owner,
            )
            .values(lease_owner=None, lease_until=None, updated_at=now)
        )


def abandon(*, db_session: Session, owner: str, ids: list[int], now: datetime) -> None:
    """Lets go of `submitting` messages whose call broke off, so reconciliation settles them.

    The worker is alive but no longer has them in flight; once their lease runs out they are
    treated like a dead worker's: asked after where the provider can say, else `unknown`.
    """
    if ids:
        db_session.execute(
            update(messages)
            .where(
                messages.c.id.in_(bindparam("ids", expanding=True)),
                messages.c.state == MessageState.SUBMITTING,
                messages.c.lease_owner == owner,
            )
            .values(lease_owner=None, updated_at=now),
            {"ids": ids},
        )
