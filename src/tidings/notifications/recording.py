"""Writing a prepared batch of transactional messages: the messages, then their requests
with the first answer of each idempotency key, then the verification codes as keyed hashes.
Every insert skips a key already taken, so two processes sending the same key at the same
time write one message, and both answer with it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tidings import keys
from tidings.config import Settings
from tidings.db import is_sqlite
from tidings.dispatch.models import KEYED, Message, MessageState
from tidings.notifications import codes
from tidings.notifications.models import Notification, Verification
from tidings.notifications.schemas import MessageAccepted
from tidings.notifications.sending import (
    Fresh,
    Outcome,
    Prepared,
    answer_of,
    first_answers,
    is_urgent,
)

messages_table: Table = Message.__table__  # type: ignore[assignment]
notifications_table: Table = Notification.__table__  # type: ignore[assignment]


def _insert_ignoring(
    db_session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    key: str,
    *,
    where: str | None = None,
) -> dict[str, int]:
    """Inserts rows, skipping any whose unique `key` is taken (a concurrent twin won), in
    one statement; returns the id of each row written, by its key. `where` is the condition
    of a partial unique index on `key`."""
    if not rows:
        return {}
    dialect = sqlite if is_sqlite(db_session) else postgresql
    statement = (
        dialect.insert(table)
        .on_conflict_do_nothing(
            index_elements=[key], index_where=None if where is None else text(where)
        )
        .returning(table.c[key], table.c.id)
    )
    return {written: int(i) for written, i in db_session.execute(statement, rows).all()}


def _ids_by_key(db_session: Session, keys: Sequence[str]) -> dict[str, int]:
    query = text("SELECT dedupe_key, id FROM messages WHERE dedupe_key IN :keys").bindparams(
        bindparam("keys", expanding=True)
    )
    return {key: int(i) for key, i in db_session.execute(query, {"keys": list(keys)}).all()}


def _answers(
    fresh: Sequence[Fresh], rows: Sequence[dict[str, Any]], ids: dict[str, int]
) -> list[MessageAccepted]:
    return [
        MessageAccepted(
            id=ids[row["dedupe_key"]],
            idempotency_key=item.request.idempotency_key,
            kind=item.request.kind,
            state=row["state"],
            send_at=row["send_at"] if row["state"] == MessageState.QUEUED.value else None,
            skip_reason=row["skip_reason"],
            verification_id=codes.new_public_id() if item.code is not None else None,
        )
        for item, row in zip(fresh, rows, strict=True)
    ]


def _write(
    db_session: Session,
    fresh: Sequence[Fresh],
    rows: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
) -> tuple[list[MessageAccepted], dict[str, int]]:
    """Writes messages, then their requests, then verification codes (hashed); returns the
    answers and the requests written, by idempotency key (a twin's are left out)."""
    ids = _insert_ignoring(db_session, messages_table, rows, "dedupe_key", where=KEYED)
    taken = [row["dedupe_key"] for row in rows if row["dedupe_key"] not in ids]
    if taken:
        ids.update(_ids_by_key(db_session, taken))
    answers = _answers(fresh, rows, ids)
    requests = [
        {
            "idempotency_key": answer.idempotency_key,
            "message_id": answer.id,
            "kind": answer.kind.value,
            "urgent": is_urgent(item.request),
            "callback_url": str(item.request.callback_url) if item.request.callback_url else None,
            "notified_state": None,
            "answer": answer.model_dump(mode="json"),
            "created_at": now,
        }
        for item, answer in zip(fresh, answers, strict=True)
    ]
    written = _insert_ignoring(db_session, notifications_table, requests, "idempotency_key")
    _add_verifications(db_session, fresh, answers, written, settings, now)
    return answers, written


def _add_verifications(
    db_session: Session,
    fresh: Sequence[Fresh],
    answers: Sequence[MessageAccepted],
    written: dict[str, int],
    settings: Settings,
    now: datetime,
) -> None:
    expires = now + timedelta(minutes=settings.verification_valid_minutes)
    secret = keys.secret(settings, "verification")
    for item, answer in zip(fresh, answers, strict=True):
        if not item.code or answer.verification_id is None:
            continue
        if answer.idempotency_key not in written:
            continue  # a concurrent twin with this key won; its code stands
        db_session.add(
            Verification(
                public_id=answer.verification_id,
                notification_id=written[answer.idempotency_key],
                phone=item.phone,
                code_hash=codes.code_hash(
                    item.code, public_id=answer.verification_id, secret=secret
                ),
                expires_at=expires,
                attempts=0,
                max_attempts=settings.verification_max_attempts,
                masked_text=item.shown,
                created_at=now,
            )
        )
    db_session.flush()


def write_batch(
    *, db_session: Session, prepared: Prepared, settings: Settings, now: datetime
) -> Outcome:
    """Writes a prepared batch; a key another process wrote meanwhile gets that first answer."""
    outcome, fresh = prepared.outcome, prepared.fresh
    if fresh:
        answers, written = _write(db_session, fresh, prepared.rows, settings, now)
        keys = [item.request.idempotency_key for item in fresh]
        stored = first_answers(db_session, [key for key in keys if key not in written])
        for item, key, answer in zip(fresh, keys, answers, strict=True):
            outcome.answers[item.index] = answer if key in written else answer_of(stored[key])
    for index, request in enumerate(prepared.requests):
        first = prepared.first_of.get(request.idempotency_key)
        if index not in outcome.answers and index not in outcome.errors and first is not None:
            if first in outcome.answers:
                outcome.answers[index] = outcome.answers[first].model_copy(
                    update={"replayed": True}
                )
            else:
                outcome.errors[index] = outcome.errors[first]
    return outcome
