"""Settles what a crash left uncertain, at worker start and every little while.

A message left `submitting` after its lease ran out was being handed to a provider when its
worker died. A provider with a query API says whether it got it: if so the message is
`submitted` (or settled, when the provider already knows its fate); if not it goes back to
the queue. A provider without one cannot say, so the message becomes `unknown` and is never
resent: a member may miss a promotion, but never gets it twice. Messages left `submitted`
past the receipt timeout are asked after too, when the provider can answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, or_, select, text

from tidings.db import session_scope
from tidings.dispatch.ledger import move
from tidings.dispatch.models import NOT_PLANNED, Message, MessageState
from tidings.dispatch.outcomes import Tally
from tidings.dispatch.receipts import apply_receipts
from tidings.providers.base import QueryableProvider, QueryResult, QueryStatus, Receipt, SmsProvider

messages = Message.__table__
RECONCILE_BATCH = 5000  # messages looked at per provider per pass
LOST_BY_CRASH = "lost_by_crash"


def _stale(
    engine: Engine,
    state: MessageState,
    before: datetime,
    column: str,
    only: list[str] | None,
    not_owner: str | None = None,
) -> dict[str, list[int]]:
    """Ids of messages in `state` whose `column` is before `before`, by provider."""
    # Said as well, so that SQLite uses the state index, which holds no planned message.
    in_state = and_(messages.c.state == state, text(NOT_PLANNED))
    conditions = [in_state, messages.c[column] < before]
    if not_owner is not None:
        owner = messages.c.lease_owner
        conditions.append(or_(owner.is_(None), owner != not_owner))
    if only is not None:
        conditions.append(messages.c.provider.in_(only))
    with session_scope(engine) as session:
        rows = session.execute(
            select(messages.c.provider, messages.c.id)
            .where(*conditions)
            .order_by(messages.c.id)
            .limit(RECONCILE_BATCH)
        ).all()
    grouped: dict[str, list[int]] = {}
    for provider, message_id in rows:
        grouped.setdefault(provider, []).append(message_id)
    return grouped


def _as_receipts(provider: str, found: list[QueryResult], now: datetime) -> list[Receipt]:
    return [
        Receipt(
            provider,
            result.provider_message_id,
            result.status.value,
            result.occurred_at or now,
            result.error_code,
        )
        for result in found
        if result.status is not QueryStatus.SUBMITTED
    ]


async def reconcile(
    *,
    engine: Engine,
    providers: Mapping[str, SmsProvider],
    now: datetime,
    receipt_timeout: float,
    owner: str | None = None,
) -> Tally:
    """Settles messages left `submitting` by a dead worker, and asks after old `submitted`.

    `owner`, the calling worker, is alive: its own messages in flight are never touched.
    """
    tally = Tally()
    stuck = _stale(engine, MessageState.SUBMITTING, now, "lease_until", None, owner)
    for name, ids in stuck.items():
        provider = providers.get(name)
        guard = " AND lease_until < ?"
        if not isinstance(provider, QueryableProvider):
            with session_scope(engine) as session:
                move(
                    session,
                    target=MessageState.UNKNOWN,
                    columns=["error_code"],
                    rows=[(LOST_BY_CRASH, i, now) for i in ids],
                    now=now,
                    where=guard,
                    clear_lease=True,
                )
            tally.add(MessageState.UNKNOWN, len(ids))
            continue
        found = await provider.query(ids)
        seen = {result.message_id: result for result in found}
        taken = [(r.provider_message_id, r.occurred_at or now, r.message_id, now) for r in found]
        lost = [(i, now) for i in ids if i not in seen]
        with session_scope(engine) as session:
            move(
                session,
                target=MessageState.SUBMITTED,
                columns=["provider_message_id", "submitted_at"],
                rows=taken,
                now=now,
                where=guard,
                clear_lease=True,
            )
            move(
                session,
                target=MessageState.QUEUED,
                columns=[],
                rows=lost,
                now=now,
                where=guard + " AND state = 'submitting'",
                clear_lease=True,
            )
            apply_receipts(db_session=session, receipts=_as_receipts(name, found, now), now=now)
        tally.add(MessageState.SUBMITTED, len(taken))
        tally.add("requeued", len(lost))
    queryable = [name for name, p in providers.items() if isinstance(p, QueryableProvider)]
    before = now - timedelta(seconds=receipt_timeout)
    waiting = _stale(engine, MessageState.SUBMITTED, before, "submitted_at", queryable)
    for name, ids in waiting.items():
        provider = providers.get(name)
        if not isinstance(provider, QueryableProvider):
            continue
        receipts = _as_receipts(name, await provider.query(ids), now)
        with session_scope(engine) as session:
            report = apply_receipts(db_session=session, receipts=receipts, now=now)
        tally.add("settled", report.matched)
    return tally
