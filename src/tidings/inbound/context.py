"""What handling a reply needs to know, read in one query per batch: the reply, its member
and store, and the message it answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from tidings.dispatch.models import Message
from tidings.inbound.answers import Answer
from tidings.inbound.models import Reply
from tidings.inbound.tickets import TicketDraft
from tidings.members.models import Member, Store

LOOKUP_CHUNK = 2000  # reply ids per IN list


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """One reply with its member, the member's store and the message it answers."""

    reply_id: int
    provider: str
    phone: str
    text: str
    received_at: datetime
    member_id: int | None
    member_name: str | None
    points: int
    timezone: str | None
    store_id: int | None
    store_code: str | None
    store_name: str | None
    store_latitude: float | None
    store_longitude: float | None
    message_id: int | None
    offer_type: str | None
    campaign_id: int | None
    message_sent_at: datetime | None

    def answer(self, text: str) -> Answer:
        """The automatic answer `text` to this reply (one per reply, whatever happens)."""
        return Answer(
            phone=self.phone,
            text=text,
            provider=self.provider,
            asked_at=self.received_at,
            member_id=self.member_id,
            timezone=self.timezone,
            dedupe_key=f"reply:{self.reply_id}",
        )

    def ticket(self, category: str, **more: object) -> TicketDraft:
        """A ticket of `category` about this reply, for the member's store."""
        return TicketDraft(
            category=category,
            phone=self.phone,
            provider=self.provider,
            subject=self.text,
            opened_at=self.received_at,
            member_id=self.member_id,
            store_id=self.store_id,
            store_code=self.store_code,
            reply_id=self.reply_id,
            **more,  # type: ignore[arg-type]
        )


@dataclass
class Effects:
    """What handling a batch decided to do, applied together at the end."""

    answers: list[Answer] = field(default_factory=list)
    tickets: list[TicketDraft] = field(default_factory=list)
    intents: dict[int, tuple[str, float]] = field(default_factory=dict)  # reply id -> intent


def load_contexts(db_session: Session, reply_ids: Sequence[int]) -> list[ReplyContext]:
    """The context of each reply in `reply_ids`, in id order."""
    message = aliased(Message)
    found: list[ReplyContext] = []
    ids = sorted(set(reply_ids))
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        query = (
            select(
                Reply.id,
                Reply.provider,
                Reply.phone,
                Reply.text,
                Reply.received_at,
                Reply.member_id,
                Member.name,
                Member.points,
                Member.timezone,
                Member.store_id,
                Store.code,
                Store.name,
                Store.latitude,
                Store.longitude,
                message.id,
                message.offer_type,
                message.campaign_id,
                func.coalesce(message.submitted_at, message.updated_at),
            )
            .outerjoin(Member, Member.id == Reply.member_id)
            .outerjoin(Store, Store.id == Member.store_id)
            .outerjoin(message, message.id == Reply.in_reply_to_message_id)
            .where(Reply.id.in_(chunk))
            .order_by(Reply.id)
        )
        for row in db_session.execute(query):
            values = list(row)
            values[7] = values[7] or 0
            found.append(ReplyContext(*values))
    return found
