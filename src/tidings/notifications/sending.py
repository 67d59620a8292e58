"""The send path of transactional messages, in batches: replay known idempotency keys,
resolve recipients, render, decide with the shared policy, and write queued (or skipped)
messages to the ledger with their requests.

A batch is one policy decision (`tidings.policy.decide`) over all its messages: transactional
messages need no consent and have no caps, but suppression (complaint, erasure, invalid
phone) stops them and a notice that is not urgent waits out quiet hours. Urgent ones
(verification codes, and notices marked urgent) are decided and stored as replies are, the
one kind that goes at any hour, as immediate answers to members do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tidings.campaigns.planner import BLOCKED_PREFIX
from tidings.campaigns.sources import phone_hash
from tidings.campaigns.spec import counting_of
from tidings.config import Settings
from tidings.content.length import measure
from tidings.content.lint import lint_messages, lint_rules
from tidings.content.template import MessageKind as ContentKind
from tidings.db import is_sqlite
from tidings.dispatch.models import PRIORITY, Message, MessageKind, MessageState
from tidings.members.models import Member, PhoneStatus
from tidings.members.phone import classify
from tidings.notifications import codes
from tidings.notifications.models import Notification, NotificationKind, Verification
from tidings.notifications.rendering import NotificationError, render_request
from tidings.notifications.schemas import MessageAccepted, MessageCreate
from tidings.policy.decide import Decision, decide
from tidings.policy.rules import CandidateKind, PolicyRules

UTC_TIME = pl.Datetime("us", "UTC")
messages_table: Table = Message.__table__  # type: ignore[assignment]
notifications_table: Table = Notification.__table__  # type: ignore[assignment]
KEY_PREFIX = "api:"  # dedupe_key of an API message: this and its idempotency key
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "member_id": pl.Int64(),
    "kind": pl.String(),
    "sent_at": UTC_TIME,
}


@dataclass
class Outcome:
    """Each request's answer, or the reason it was refused, by position in the batch."""

    answers: dict[int, MessageAccepted] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


@dataclass
class _Fresh:
    """A request to send now, with what was worked out for it."""

    index: int
    request: MessageCreate
    phone: str
    member_id: int | None
    timezone: str | None
    text: str
    shown: str  # the text as GET shows it: a code masked
    code: str | None = None


def _replays(db_session: Session, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The first answers of keys already used."""
    if not keys:
        return {}
    query = select(Notification.idempotency_key, Notification.answer).where(
        Notification.idempotency_key.in_(sorted(set(keys)))
    )
    return {key: answer for key, answer in db_session.execute(query).all()}


def _members(db_session: Session, requests: Sequence[MessageCreate]) -> dict[Any, Member]:
    """The members named by id or by phone, keyed by both."""
    ids = {r.member_id for r in requests if r.member_id is not None}
    found: dict[Any, Member] = {}
    if ids:
        for member in db_session.scalars(select(Member).where(Member.id.in_(ids))):
            found[member.id] = member
    return found


def _recipient(
    request: MessageCreate, members: dict[Any, Member], settings: Settings
) -> tuple[str, Member | None]:
    """The E.164 phone and member of a request, or a NotificationError saying what is wrong."""
    if request.member_id is not None:
        member = members.get(request.member_id)
        if member is None:
            raise NotificationError(f"no member has id {request.member_id}", status=404)
        if not member.phone or member.phone_status is not PhoneStatus.OK:
            raise NotificationError(
                f"member {member.id} has no phone that can receive SMS; correct it and retry",
                status=422,
            )
        return member.phone, member
    phone, _, problem = classify(request.phone or "", region=settings.default_region)
    if phone is None:
        raise NotificationError(problem or "the phone is not a mobile number", status=422)
    return phone, None


def _by_phone(db_session: Session, phones: Sequence[str]) -> dict[str, Member]:
    if not phones:
        return {}
    query = select(Member).where(Member.phone.in_(sorted(set(phones))))
    return {member.phone or "": member for member in db_session.scalars(query)}


def _prepare(
    db_session: Session,
    requests: Sequence[tuple[int, MessageCreate]],
    outcome: Outcome,
    settings: Settings,
) -> list[_Fresh]:
    """Resolves and renders each fresh request; a refused one gets its error in `outcome`."""
    members = _members(db_session, [r for _, r in requests])
    raw_phones = [r.phone for _, r in requests if r.phone]
    normalised = [classify(p, region=settings.default_region)[0] for p in raw_phones]
    by_phone = _by_phone(db_session, [p for p in normalised if p])
    fresh = []
    for index, request in requests:
        try:
            phone, member = _recipient(request, members, settings)
            member = member or by_phone.get(phone)
            rendered = render_request(request, member=member, settings=settings)
        except NotificationError as error:
            outcome.errors[index] = str(error)
            continue
        fresh.append(
            _Fresh(
                index=index,
                request=request,
                phone=phone,
                member_id=member.id if member else None,
                timezone=member.timezone if member else None,
                text=rendered.text,
                shown=rendered.shown,
                code=rendered.code,
            )
        )
    return fresh


def _urgent(request: MessageCreate) -> bool:
    return request.urgent or request.kind is NotificationKind.VERIFICATION


def _suppressions(db_session: Session, hashes: Sequence[str]) -> pl.DataFrame:
    """The suppressions of these phone hashes only."""
    query = text("SELECT phone_hash, reason FROM suppressions WHERE phone_hash IN :hashes")
    rows = db_session.execute(
        query.bindparams(bindparam("hashes", expanding=True)), {"hashes": sorted(set(hashes))}
    ).all()
    return pl.DataFrame(
        [tuple(row) for row in rows],
        schema={"phone_hash": pl.String, "reason": pl.String},
        orient="row",
    )


def _decided(
    db_session: Session, fresh: Sequence[_Fresh], settings: Settings, now: datetime
) -> pl.DataFrame:
    """The policy's decision for each fresh message, in order: decision, send_at, reason."""
    hashes = [phone_hash(item.phone) for item in fresh]
    # A phone without a member still needs a member id of its own for the policy's ordering.
    candidates = pl.DataFrame(
        {
            "member_id": [item.member_id or -(i + 1) for i, item in enumerate(fresh)],
            "phone_hash": hashes,
            "kind": [
                (
                    CandidateKind.REPLY if _urgent(item.request) else CandidateKind.TRANSACTIONAL
                ).value
                for item in fresh
            ],
            "desired_at": [now] * len(fresh),
            "timezone": [item.timezone or settings.default_timezone for item in fresh],
        },
        schema_overrides={"desired_at": UTC_TIME, "member_id": pl.Int64},
    )
    return decide(
        candidates,
        history=pl.DataFrame(schema=HISTORY_SCHEMA),
        suppressions=_suppressions(db_session, hashes),
        rules=PolicyRules.from_settings(settings),
        now=now,
    ).select("decision", "send_at", "reason")


def _checked(fresh: Sequence[_Fresh], settings: Settings) -> pl.DataFrame:
    """Parts, cost and any word or length finding that blocks each text."""
    scheme, price = counting_of(settings.default_provider, settings)
    texts = pl.Series("text", [item.text for item in fresh], dtype=pl.String)
    measured = measure(texts, scheme=scheme, price_per_part_cents=price)
    rules = lint_rules(
        kind=ContentKind.TRANSACTIONAL, brand_name=settings.brand_name, scheme=scheme
    )
    blocked = lint_messages(texts, rules=rules, measured=measured)
    return pl.DataFrame(
        {"parts": measured["segments"], "cost": measured["cost_cents"], "blocked": blocked}
    )


def _message_rows(
    fresh: Sequence[_Fresh],
    decided: pl.DataFrame,
    checked: pl.DataFrame,
    settings: Settings,
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for item, decision, check in zip(
        fresh, decided.iter_rows(named=True), checked.iter_rows(named=True), strict=True
    ):
        reason = decision["reason"] if decision["decision"] == Decision.SKIP else None
        if reason is None and check["blocked"]:
            reason = f"{BLOCKED_PREFIX}{check['blocked']}"[:64]
        kind = MessageKind.REPLY if _urgent(item.request) else MessageKind.TRANSACTIONAL
        going = reason is None
        rows.append(
            {
                "dedupe_key": KEY_PREFIX + item.request.idempotency_key,
                "member_id": item.member_id,
                "phone": item.phone,
                "timezone": item.timezone,
                "kind": kind.value,
                "priority": PRIORITY[MessageKind.TRANSACTIONAL],
                "text": item.text if going else item.shown,
                "parts": int(check["parts"] or 1) if going else 0,
                "cost_cents": int(check["cost"] or 0) if going else 0,
                "state": (MessageState.QUEUED if going else MessageState.SKIPPED).value,
                "skip_reason": reason,
                "rollout_stage": 0,
                "send_at": decision["send_at"] or now,
                "provider": settings.default_provider,
                "attempts": 0,
                "final_at": None if going else now,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def _insert_ignoring(
    db_session: Session, table: Table, rows: list[dict[str, Any]], key: str
) -> None:
    """Inserts rows, skipping any whose unique `key` is taken (a concurrent twin won)."""
    if rows:
        dialect = sqlite if is_sqlite(db_session) else postgresql
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=[key])
        db_session.execute(statement, rows)


def _ids_by_key(db_session: Session, keys: Sequence[str]) -> dict[str, int]:
    query = text("SELECT dedupe_key, id FROM messages WHERE dedupe_key IN :keys").bindparams(
        bindparam("keys", expanding=True)
    )
    return {key: int(i) for key, i in db_session.execute(query, {"keys": list(keys)}).all()}


def _answers(
    fresh: Sequence[_Fresh], rows: Sequence[dict[str, Any]], ids: dict[str, int]
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
    fresh: Sequence[_Fresh],
    rows: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
) -> None:
    """Writes messages, then their requests, then verification codes (hashed)."""
    _insert_ignoring(db_session, messages_table, rows, "dedupe_key")
    ids = _ids_by_key(db_session, [row["dedupe_key"] for row in rows])
    answers = _answers(fresh, rows, ids)
    requests = [
        {
            "idempotency_key": answer.idempotency_key,
            "message_id": answer.id,
            "kind": answer.kind.value,
            "urgent": _urgent(item.request),
            "callback_url": str(item.request.callback_url) if item.request.callback_url else None,
            "notified_state": None,
            "answer": answer.model_dump(mode="json"),
            "created_at": now,
        }
        for item, answer in zip(fresh, answers, strict=True)
    ]
    _insert_ignoring(db_session, notifications_table, requests, "idempotency_key")
    _add_verifications(db_session, fresh, answers, settings, now)


def _add_verifications(
    db_session: Session,
    fresh: Sequence[_Fresh],
    answers: Sequence[MessageAccepted],
    settings: Settings,
    now: datetime,
) -> None:
    pairs = [(i, a) for i, a in zip(fresh, answers, strict=True) if i.code and a.verification_id]
    if not pairs:
        return
    keys = [answer.idempotency_key for _, answer in pairs]
    owners = dict(
        db_session.execute(
            select(Notification.idempotency_key, Notification.id).where(
                Notification.idempotency_key.in_(keys),
                Notification.message_id.in_([a.id for _, a in pairs]),
            )
        ).all()
    )
    expires = now + timedelta(minutes=settings.verification_valid_minutes)
    for item, answer in pairs:
        if answer.idempotency_key not in owners or answer.verification_id is None:
            continue  # a concurrent twin with this key won; its code stands
        db_session.add(
            Verification(
                public_id=answer.verification_id,
                notification_id=owners[answer.idempotency_key],
                phone=item.phone,
                code_hash=codes.code_hash(
                    item.code or "",
                    public_id=answer.verification_id,
                    secret=settings.verification_secret,
                ),
                expires_at=expires,
                attempts=0,
                max_attempts=settings.verification_max_attempts,
                masked_text=item.shown,
                created_at=now,
            )
        )
    db_session.flush()


@dataclass
class Prepared:
    """A batch worked out but not written: answers of known keys, refusals, and the rows."""

    requests: Sequence[MessageCreate]
    outcome: Outcome
    first_of: dict[str, int]
    fresh: list[_Fresh]
    rows: list[dict[str, Any]]


def prepare_batch(
    *, db_session: Session, requests: Sequence[MessageCreate], settings: Settings, now: datetime
) -> Prepared:
    """Works a batch out, reading only: replays known keys, resolves, renders and decides."""
    outcome = Outcome()
    replays = _replays(db_session, [r.idempotency_key for r in requests])
    first_of: dict[str, int] = {}
    pending: list[tuple[int, MessageCreate]] = []
    for index, request in enumerate(requests):
        key = request.idempotency_key
        if key in replays:
            outcome.answers[index] = _parsed(replays[key]).model_copy(update={"replayed": True})
        elif key not in first_of:  # a repeat within the batch is answered from the first
            first_of[key] = index
            pending.append((index, request))
    fresh = _prepare(db_session, pending, outcome, settings)
    rows: list[dict[str, Any]] = []
    if fresh:
        decided = _decided(db_session, fresh, settings, now)
        rows = _message_rows(fresh, decided, _checked(fresh, settings), settings, now)
    return Prepared(requests, outcome, first_of, fresh, rows)


def write_batch(
    *, db_session: Session, prepared: Prepared, settings: Settings, now: datetime
) -> Outcome:
    """Writes a prepared batch; a key another process wrote meanwhile gets that first answer."""
    outcome, fresh = prepared.outcome, prepared.fresh
    if fresh:
        _write(db_session, fresh, prepared.rows, settings, now)
        stored = _replays(db_session, [item.request.idempotency_key for item in fresh])
        for item in fresh:
            outcome.answers[item.index] = _parsed(stored[item.request.idempotency_key])
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


def _parsed(answer: Any) -> MessageAccepted:
    if isinstance(answer, str):
        return MessageAccepted.model_validate_json(answer)
    return MessageAccepted.model_validate(answer)
