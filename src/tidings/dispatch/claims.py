"""Claims of due messages: taken with a lease and marked `submitting` in one statement.

On PostgreSQL any number of workers claim at once: the UPDATE picks its rows through
`SELECT ... FOR UPDATE SKIP LOCKED`, so two claims never share a row. SQLite has one writer
at a time; within a process a lock makes the claimer single, and the UPDATE ... RETURNING
takes and returns the rows in one statement. Taking and marking at once writes each message
once instead of twice; the caller commits the claim before any provider call, so a message is
`submitting` in a committed transaction of its own before it can reach a handset.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.db import is_sqlite
from tidings.dispatch.ledger import move
from tidings.dispatch.models import NOT_PLANNED, Message, MessageKind, MessageState, sources
from tidings.dispatch.outcomes import BACKOFF_CAP

messages: Table = Message.__table__  # type: ignore[assignment]
campaigns: Table = Campaign.__table__  # type: ignore[assignment]
_sqlite_claimer = threading.Lock()
# Only a queued message is taken to be sent; the claim says so in its text (see take_due).
assert sources(MessageState.SUBMITTING) == [MessageState.QUEUED]
_WALK_THE_INDEX = text("SET LOCAL enable_sort = off")  # for the claim's transaction only


class ClaimedMessage(NamedTuple):
    """A message taken by one worker, with what it needs to send it."""

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
    trigger_id: int | None = None  # a trigger's message: its exit condition is checked again
    member_id: int | None = None


def campaign_running() -> ColumnElement[bool]:
    """Messages of a campaign go only while it runs; trigger and one-off messages have none."""
    running = select(campaigns.c.id).where(campaigns.c.status == CampaignStatus.RUNNING)
    return or_(messages.c.campaign_id.is_(None), messages.c.campaign_id.in_(running))


def take_due(
    *, db_session: Session, owner: str, limit: int, lease: float, now: datetime
) -> list[ClaimedMessage]:
    """Leases up to `limit` due messages to `owner` and marks them `submitting`, most urgent
    first, in one statement, in a transaction of its own (on PostgreSQL it turns sorting off
    for the rest of it); the caller commits before handing any to a provider.

    Only messages of running campaigns (or of none) are taken, so a pause or a cancel stops
    every message not yet taken. What is taken and then not sent goes back with `put_back`.
    """
    # The state as a literal, not a parameter: an index limited to queued messages is only
    # used by a statement that says `state = 'queued'` in its text.
    queued = messages.c.state == literal_column(f"'{MessageState.QUEUED}'")
    due = (
        select(messages.c.id)
        .where(
            queued,
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
    # Still queued when taken. On SQLite the check is written so that no index serves it
    # (a unary plus): else SQLite walks the whole queued index, testing each entry against
    # the picked ids, instead of fetching those by key (from a queue of 200,000, a claim
    # cost 40 microseconds a message instead of 22).
    unindexed: ColumnElement[bool] = literal_column(f"+messages.state = '{MessageState.QUEUED}'")
    still_queued = unindexed if sqlite else queued
    statement = (
        update(messages)
        .where(picked, still_queued)
        .values(
            state=MessageState.SUBMITTING,
            attempts=messages.c.attempts + 1,
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease),
            updated_at=now,
        )
        .returning(*(messages.c[name] for name in ClaimedMessage._fields))
    )
    if sqlite:
        with _sqlite_claimer:
            rows = db_session.execute(statement).all()
    else:
        # Walk the queued index in claim order and stop at the limit. Right after a plan
        # writes its messages the statistics say the queue is nearly empty, and the planner
        # would rather read and sort the whole queue for every claim.
        db_session.execute(_WALK_THE_INDEX)
        rows = db_session.execute(statement).all()
    # Rows are tuples already: a NamedTuple over them costs no copy of the values.
    claimed = [ClaimedMessage._make(row) for row in rows]
    claimed.sort(key=_by_id)
    return claimed


def _by_id(message: ClaimedMessage) -> int:
    return message.id


def put_back(
    *,
    db_session: Session,
    owner: str,
    moves: Sequence[tuple[int, datetime | None]],
    now: datetime,
) -> None:
    """Returns `owner`'s taken, unsent messages to the queue, each to go at the time given
    (None: as soon as any worker can), and undoes the attempt their taking counted."""
    if not moves:
        return
    rows = [
        (now if send_at is None else send_at, message_id, owner) for message_id, send_at in moves
    ]
    move(
        db_session,
        target=MessageState.QUEUED,
        columns=["send_at"],
        rows=rows,
        now=now,
        where_columns=["lease_owner"],
        where=" AND state = 'submitting'",
        clear_lease=True,
        extra_assignments=", attempts = attempts - 1",
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


def work_left(*, db_session: Session, now: datetime, receipt_timeout: float) -> bool:
    """Whether any message is due (or retrying soon), in flight, or awaiting a receipt."""
    m = messages.c
    retry_horizon = now + timedelta(seconds=BACKOFF_CAP)
    receipt_horizon = now - timedelta(seconds=receipt_timeout)
    due = and_(
        m.state == MessageState.QUEUED,
        campaign_running(),
        or_(m.send_at <= now, and_(m.attempts > 0, m.send_at <= retry_horizon)),
    )
    # In flight and awaiting a receipt are found through the state index, which holds no
    # planned message: SQLite uses it only for a branch that says so.
    unplanned = text(NOT_PLANNED)
    submitting = and_(m.state == MessageState.SUBMITTING, unplanned)
    awaiting = and_(m.state == MessageState.SUBMITTED, unplanned, m.submitted_at > receipt_horizon)
    pending = or_(due, submitting, awaiting)
    # Whether any is left, not how many: counting a large send's queue on every round of
    # the housekeeping read it whole five times a second.
    return db_session.execute(select(literal(1)).where(pending).limit(1)).first() is not None
