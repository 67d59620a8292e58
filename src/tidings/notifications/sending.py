"""The send path of transactional messages, in batches, up to the write: replay known
idempotency keys, resolve recipients, render, and decide with the shared policy; the rows
of queued (or skipped) messages then go to the ledger (`notifications.recording`).

Messages are decided by the shared policy (`tidings.policy.decide`, whose answers
`notifications.decisions` remembers for the minute): transactional messages need no consent
and have no caps, but suppression (complaint, erasure, invalid phone) stops them and a
notice that is not urgent waits out quiet hours. Urgent ones
(verification codes, and notices marked urgent) are decided and stored as replies are, the
one kind that goes at any hour, as immediate answers to members do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Row, bindparam, select, text
from sqlalchemy.orm import Session

from tidings.campaigns.planner import BLOCKED_PREFIX
from tidings.campaigns.sources import phone_hash
from tidings.campaigns.spec import counting_of
from tidings.config import Settings
from tidings.content.length import measure, split_parts
from tidings.content.lint import blocking_reason, lint_messages, lint_rules, lint_text
from tidings.content.template import MessageKind as ContentKind
from tidings.dispatch.models import PRIORITY, MessageKind, MessageState
from tidings.members.models import Member, PhoneStatus
from tidings.members.phone import classify
from tidings.notifications.decisions import Decided, DecisionMemo, Situation
from tidings.notifications.models import Notification, NotificationKind
from tidings.notifications.rendering import NotificationError, render_request
from tidings.notifications.schemas import MessageAccepted, MessageCreate
from tidings.policy.decide import Decision
from tidings.policy.rules import CandidateKind

KEY_PREFIX = "api:"  # dedupe_key of an API message: this and its idempotency key
# Fewer texts than this are measured and linted one by one (`split_parts`, `lint_text`, held
# equal to the bulk path by the content tests): Polars' fixed cost per call outweighs them.
BULK_CHECK_FROM = 64
DECISIONS = DecisionMemo()
# What the send path reads of a member, as plain rows: lighter than mapped objects.
MEMBER_COLUMNS = (
    Member.id,
    Member.phone,
    Member.phone_status,
    Member.name,
    Member.gender,
    Member.points,
    Member.tier,
    Member.timezone,
)
MemberRow = Row[*tuple[Any, ...]]


@dataclass
class Outcome:
    """Each request's answer, or the reason it was refused, by position in the batch."""

    answers: dict[int, MessageAccepted] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


@dataclass
class Fresh:
    """A request to send now, with what was worked out for it."""

    index: int
    request: MessageCreate
    phone: str
    member_id: int | None
    timezone: str | None
    text: str
    shown: str  # the text as GET shows it: a code masked
    code: str | None = None


def first_answers(db_session: Session, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The first answers of idempotency keys already used, by key."""
    if not keys:
        return {}
    query = select(Notification.idempotency_key, Notification.answer).where(
        Notification.idempotency_key.in_(sorted(set(keys)))
    )
    return {key: answer for key, answer in db_session.execute(query).all()}


def _members(db_session: Session, requests: Sequence[MessageCreate]) -> dict[int, MemberRow]:
    """The members named by id, by id."""
    ids = {r.member_id for r in requests if r.member_id is not None}
    if not ids:
        return {}
    query = select(*MEMBER_COLUMNS).where(Member.id.in_(sorted(ids)))
    return {member.id: member for member in db_session.execute(query)}


def _recipient(
    request: MessageCreate, members: dict[int, MemberRow], settings: Settings
) -> tuple[str, MemberRow | None]:
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


def _by_phone(db_session: Session, phones: Sequence[str]) -> dict[str, MemberRow]:
    if not phones:
        return {}
    query = select(*MEMBER_COLUMNS).where(Member.phone.in_(sorted(set(phones))))
    return {member.phone or "": member for member in db_session.execute(query)}


def _prepare(
    db_session: Session,
    requests: Sequence[tuple[int, MessageCreate]],
    outcome: Outcome,
    settings: Settings,
) -> list[Fresh]:
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
            Fresh(
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


def is_urgent(request: MessageCreate) -> bool:
    """Whether a message goes at any hour: a verification, or a notice marked urgent."""
    return request.urgent or request.kind is NotificationKind.VERIFICATION


def _suppressions(db_session: Session, hashes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The suppression reasons of these phone hashes (sorted), for those that have any."""
    query = text("SELECT phone_hash, reason FROM suppressions WHERE phone_hash IN :hashes")
    rows = db_session.execute(
        query.bindparams(bindparam("hashes", expanding=True)), {"hashes": sorted(set(hashes))}
    ).all()
    reasons: dict[str, list[str]] = {}
    for phone_hash_, reason in rows:
        reasons.setdefault(phone_hash_, []).append(reason)
    return {key: tuple(sorted(found)) for key, found in reasons.items()}


def _decided(
    db_session: Session, fresh: Sequence[Fresh], settings: Settings, now: datetime
) -> list[Decided]:
    """The policy's decision for each fresh message, in order."""
    hashes = [phone_hash(item.phone) for item in fresh]
    suppressed = _suppressions(db_session, hashes)
    situations = [
        Situation(
            kind=(
                CandidateKind.REPLY if is_urgent(item.request) else CandidateKind.TRANSACTIONAL
            ).value,
            timezone=item.timezone or settings.default_timezone,
            suppressed=suppressed.get(key, ()),
        )
        for item, key in zip(fresh, hashes, strict=True)
    ]
    return DECISIONS.decide(situations, settings=settings, now=now)


@dataclass(frozen=True)
class Checked:
    """A text's parts and cost, and the lint finding that blocks it (or None)."""

    parts: int
    cost_cents: int
    blocked: str | None


def _checked(fresh: Sequence[Fresh], settings: Settings) -> list[Checked]:
    """Parts, cost and any word or length finding that blocks each text."""
    scheme, price = counting_of(settings.default_provider, settings)
    rules = lint_rules(
        kind=ContentKind.TRANSACTIONAL, brand_name=settings.brand_name, scheme=scheme
    )
    if len(fresh) < BULK_CHECK_FROM:
        checked = []
        for item in fresh:
            parts = len(split_parts(item.text, scheme=scheme))
            blocked = blocking_reason(lint_text(item.text, rules=rules), rules=rules)
            checked.append(Checked(parts, parts * price, blocked))
        return checked
    texts = pl.Series("text", [item.text for item in fresh], dtype=pl.String)
    measured_all = measure(texts, scheme=scheme, price_per_part_cents=price)
    blocked_all = lint_messages(texts, rules=rules, measured=measured_all)
    return [
        Checked(parts, cost, blocked)
        for parts, cost, blocked in zip(
            measured_all["segments"], measured_all["cost_cents"], blocked_all, strict=True
        )
    ]


def _message_rows(
    fresh: Sequence[Fresh],
    decided: Sequence[Decided],
    checked: Sequence[Checked],
    settings: Settings,
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for item, decision, check in zip(fresh, decided, checked, strict=True):
        reason = decision.reason if decision.decision == Decision.SKIP else None
        if reason is None and check.blocked:
            reason = f"{BLOCKED_PREFIX}{check.blocked}"[:64]
        kind = MessageKind.REPLY if is_urgent(item.request) else MessageKind.TRANSACTIONAL
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
                "parts": int(check.parts or 1) if going else 0,
                "cost_cents": int(check.cost_cents or 0) if going else 0,
                "state": (MessageState.QUEUED if going else MessageState.SKIPPED).value,
                "skip_reason": reason,
                "rollout_stage": 0,
                "send_at": decision.send_at or now,
                "provider": settings.default_provider,
                "attempts": 0,
                "final_at": None if going else now,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


@dataclass
class Prepared:
    """A batch worked out but not written: answers of known keys, refusals, and the rows."""

    requests: Sequence[MessageCreate]
    outcome: Outcome
    first_of: dict[str, int]
    fresh: list[Fresh]
    rows: list[dict[str, Any]]


def prepare_batch(
    *, db_session: Session, requests: Sequence[MessageCreate], settings: Settings, now: datetime
) -> Prepared:
    """Works a batch out, reading only: replays known keys, resolves, renders and decides."""
    outcome = Outcome()
    replays = first_answers(db_session, [r.idempotency_key for r in requests])
    first_of: dict[str, int] = {}
    pending: list[tuple[int, MessageCreate]] = []
    for index, request in enumerate(requests):
        key = request.idempotency_key
        if key in replays:
            outcome.answers[index] = answer_of(replays[key]).model_copy(update={"replayed": True})
        elif key not in first_of:  # a repeat within the batch is answered from the first
            first_of[key] = index
            pending.append((index, request))
    fresh = _prepare(db_session, pending, outcome, settings)
    rows: list[dict[str, Any]] = []
    if fresh:
        decided = _decided(db_session, fresh, settings, now)
        rows = _message_rows(fresh, decided, _checked(fresh, settings), settings, now)
    return Prepared(requests, outcome, first_of, fresh, rows)


def answer_of(answer: Any) -> MessageAccepted:
    """A stored first answer (JSON) as the API gives it."""
    if isinstance(answer, str):
        return MessageAccepted.model_validate_json(answer)
    return MessageAccepted.model_validate(answer)
