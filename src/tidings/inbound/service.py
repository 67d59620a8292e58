"""Storing replies in bulk: each linked to its member (by phone) and to the latest message
that member received, a repeat of a reply already stored ignored."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tidings.config import Settings, get_settings
from tidings.db import is_sqlite
from tidings.dispatch.models import Message, MessageState
from tidings.inbound.handling import Handled, handle_replies
from tidings.inbound.models import Reply
from tidings.members.models import Member
from tidings.providers.base import InboundReply

replies_table: Table = Reply.__table__  # type: ignore[assignment]
LOOKUP_CHUNK = 2000  # phones or member ids per IN list
# States of a message that reached, or may have reached, the member's handset (one still
# `submitting` may be delivered before its worker records the provider's answer).
RECEIVED_STATES = (
    MessageState.SUBMITTING,
    MessageState.SUBMITTED,
    MessageState.DELIVERED,
    MessageState.UNKNOWN,
)
# Providers stamp replies to the second, on their own clock: a message we sent up to this
# long after the stamp may still be the one answered.
CLOCK_SLACK = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class StoredReplies:
    """What storing a batch of replies did; `ids` are the rows new in this batch."""

    stored: int
    duplicates: int
    linked: int  # replies linked to a member
    ids: list[int] = field(default_factory=list)
    handled: Handled | None = None


def reply_key(reply: InboundReply) -> str:
    """The provider's id of a reply, or one derived from what it says when it has none
    (Tencent sends none): the same callback twice gives the same key."""
    if reply.provider_message_id:
        return reply.provider_message_id[:100]
    content = f"{reply.phone}|{reply.received_at.isoformat()}|{reply.text}"
    return "sha1:" + hashlib.sha1(content.encode()).hexdigest()


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + LOOKUP_CHUNK] for i in range(0, len(values), LOOKUP_CHUNK)]


def _members_by_phone(db_session: Session, phones: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(set(phones))):
        rows = db_session.execute(select(Member.phone, Member.id).where(Member.phone.in_(chunk)))
        found.update({phone: member_id for phone, member_id in rows if phone})
    return found


def _received(
    db_session: Session, member_ids: Sequence[int]
) -> dict[int, list[tuple[datetime, int]]]:
    """Each member's received messages as (submitted at, id), newest first."""
    found: dict[int, list[tuple[datetime, int]]] = {}
    for chunk in _chunks(sorted(set(member_ids))):
        rows = db_session.execute(
            select(
                Message.member_id,
                func.coalesce(Message.submitted_at, Message.updated_at),
                Message.id,
            ).where(Message.member_id.in_(chunk), Message.state.in_(RECEIVED_STATES))
        )
        for member_id, submitted_at, message_id in rows:
            if member_id is None or submitted_at is None:
                continue
            found.setdefault(member_id, []).append((submitted_at, message_id))
    for messages in found.values():
        messages.sort(reverse=True)
    return found


def _latest_before(messages: list[tuple[datetime, int]], moment: datetime) -> int | None:
    for submitted_at, message_id in messages:
        if submitted_at <= moment + CLOCK_SLACK:
            return message_id
    return None


def store_replies(
    *,
    db_session: Session,
    replies: Sequence[InboundReply],
    now: datetime,
    settings: Settings | None = None,
) -> StoredReplies:
    """Stores `replies`, linking each to its member and the latest message they received,
    and handles the new ones (opt-out, keyword services, answers, tickets) in the same
    transaction, so a reply is never stored without its effects."""
    unique: dict[tuple[str, str], InboundReply] = {}
    for reply in replies:
        unique.setdefault((reply.provider, reply_key(reply)), reply)
    if not unique:
        return StoredReplies(0, 0, 0)
    members = _members_by_phone(db_session, [reply.phone for reply in unique.values()])
    received = _received(db_session, list(members.values()))
    rows = []
    for (provider, key), reply in unique.items():
        member_id = members.get(reply.phone)
        rows.append(
            {
                "provider": provider,
                "provider_message_id": key,
                "phone": reply.phone,
                "recipient": (reply.recipient or None) and reply.recipient[:32],
                "member_id": member_id,
                "text": reply.text,
                "received_at": reply.received_at,
                "in_reply_to_message_id": (
                    None
                    if member_id is None
                    else _latest_before(received.get(member_id, []), reply.received_at)
                ),
                "created_at": now,
            }
        )
    dialect = sqlite if is_sqlite(db_session) else postgresql
    statement = (
        dialect.insert(replies_table)
        .on_conflict_do_nothing(index_elements=["provider", "provider_message_id"])
        .returning(replies_table.c.id)
    )
    ids = sorted(db_session.execute(statement, rows).scalars().all()) if rows else []
    linked = sum(1 for row in rows if row["member_id"] is not None)
    handled = handle_replies(
        db_session=db_session, reply_ids=ids, now=now, settings=settings or get_settings()
    )
    return StoredReplies(len(ids), len(replies) - len(ids), linked, ids, handled)
