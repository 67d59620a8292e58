"""Answers to members as rows of the message ledger, written in bulk.

An answer to what a member has just written goes at once, whatever the hour, with the
priority of a reply. Anything later (an agent answering an old ticket, an answer handled
long after the member wrote) is a transactional message and waits out the quiet hours in
the member's own timezone, like every other transactional message.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.content.length import split_parts
from tidings.content.template import signature_of
from tidings.dispatch.models import PRIORITY, Message, MessageKind, MessageState
from tidings.policy.rules import PolicyRules
from tidings.policy.windows import open_times

messages_table: Table = Message.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Answer:
    """One text to send to one phone; `asked_at` is when the member wrote what it answers."""

    phone: str
    text: str
    provider: str
    asked_at: datetime | None
    member_id: int | None = None
    timezone: str | None = None
    dedupe_key: str | None = None  # one answer per reply: reply:<id>


def _immediate(answer: Answer, now: datetime, settings: Settings) -> bool:
    if answer.asked_at is None:
        return False
    return now - answer.asked_at <= timedelta(minutes=settings.reply_immediate_minutes)


def _send_times(
    answers: Sequence[Answer], now: datetime, settings: Settings
) -> list[tuple[MessageKind, datetime]]:
    """Kind and send time of each answer: a reply now, or transactional after quiet hours."""
    kinds = [
        MessageKind.REPLY if _immediate(a, now, settings) else MessageKind.TRANSACTIONAL
        for a in answers
    ]
    later = [i for i, kind in enumerate(kinds) if kind is MessageKind.TRANSACTIONAL]
    times = [now] * len(answers)
    if later:
        rules = PolicyRules.from_settings(settings)
        frame = pl.DataFrame(
            {
                "at": [now] * len(later),
                "timezone": [answers[i].timezone or settings.default_timezone for i in later],
                "kind": ["transactional"] * len(later),
            },
            schema={"at": pl.Datetime("us", "UTC"), "timezone": pl.String, "kind": pl.String},
        )
        opened = open_times(frame, rules=rules)["opens_at"].to_list()
        for i, at in zip(later, opened, strict=True):
            times[i] = at
    return list(zip(kinds, times, strict=True))


def queue_answers(
    *, db_session: Session, answers: Sequence[Answer], now: datetime, settings: Settings
) -> list[int]:
    """Writes `answers` to the ledger as queued messages and returns their ids in order.

    An answer whose dedupe key is already in the ledger is not written again (its id is
    left out), so a reply handled twice is answered once.
    """
    if not answers:
        return []
    signature = signature_of(settings.brand_name)
    rows = []
    for answer, (kind, send_at) in zip(answers, _send_times(answers, now, settings), strict=True):
        text = answer.text if answer.text.startswith(signature) else signature + answer.text
        parts = max(len(split_parts(text)), 1)
        rows.append(
            {
                "dedupe_key": answer.dedupe_key or f"answer:{uuid.uuid4().hex}",
                "member_id": answer.member_id,
                "phone": answer.phone,
                "timezone": answer.timezone,
                "kind": kind,
                "priority": PRIORITY[kind],
                "text": text,
                "parts": parts,
                "cost_cents": parts * settings.price_per_part_cents,
                "state": MessageState.QUEUED,
                "rollout_stage": 0,
                "send_at": send_at,
                "provider": answer.provider,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    keys = [row["dedupe_key"] for row in rows]
    existing = set(
        db_session.execute(
            messages_table.select()
            .with_only_columns(messages_table.c.dedupe_key)
            .where(messages_table.c.dedupe_key.in_(keys))
        ).scalars()
    )
    fresh = [row for row in rows if row["dedupe_key"] not in existing]
    if not fresh:
        return []
    statement = insert(messages_table).returning(messages_table.c.id, sort_by_parameter_order=True)
    ids = db_session.execute(statement, fresh)
    return list(ids.scalars().all())
