"""Storing replies: linked to the member by phone and to the latest message they received,
a stranger's kept without a member, a repeat stored once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState
from tidings.inbound.service import store_replies
from tidings.members.models import Member
from tidings.providers.base import InboundReply

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _member_with_messages(engine: Engine) -> tuple[int, dict[str, int]]:
    with session_scope(engine) as session:
        member = Member(phone="+8613800000001", name="王芳")
        session.add(member)
        session.flush()
        ids = {}
        for key, minutes, state in [
            ("old", -120, MessageState.DELIVERED),
            ("latest", -30, MessageState.DELIVERED),
            ("refused", -10, MessageState.FAILED),
            ("after", 60, MessageState.SUBMITTED),
        ]:
            message = Message(
                dedupe_key=key,
                member_id=member.id,
                phone=member.phone,
                text=key,
                state=state,
                provider="ali",
                submitted_at=NOW + timedelta(minutes=minutes),
            )
            session.add(message)
            session.flush()
            ids[key] = message.id
        return member.id, ids


def _reply(phone: str, text: str, pmid: str | None, minutes: int = 0) -> InboundReply:
    return InboundReply("ali", phone, text, NOW + timedelta(minutes=minutes), pmid, "1234")


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT phone, text, member_id, in_reply_to_message_id, recipient"
                    " FROM replies ORDER BY id"
                )
            )
        ]


def test_a_reply_is_linked_to_the_member_and_the_last_message_they_received(
    engine: Engine,
) -> None:
    member_id, ids = _member_with_messages(engine)
    with session_scope(engine) as session:
        stored = store_replies(
            db_session=session,
            replies=[
                _reply("+8613800000001", "1", "seq-1"),
                _reply("+8613999999999", "你们是谁", "seq-2"),
            ],
            now=NOW,
        )
    assert (stored.stored, stored.duplicates, stored.linked) == (2, 0, 1)
    assert _rows(engine) == [
        ("+8613800000001", "1", member_id, ids["latest"], "1234"),
        ("+8613999999999", "你们是谁", None, None, "1234"),
    ]


def test_a_repeated_reply_is_stored_once_with_or_without_the_providers_id(
    engine: Engine,
) -> None:
    _member_with_messages(engine)
    batch = [_reply("+8613800000001", "TD", "seq-1"), _reply("+8613800000001", "退订", None)]
    with session_scope(engine) as session:
        first = store_replies(db_session=session, replies=batch + batch, now=NOW)
    with session_scope(engine) as session:
        again = store_replies(db_session=session, replies=batch, now=NOW)
    assert (first.stored, first.duplicates) == (2, 2)
    assert (again.stored, again.duplicates, again.ids) == (0, 2, [])
    assert [row[1] for row in _rows(engine)] == ["TD", "退订"]
