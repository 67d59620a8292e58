"""Members' choice of the kinds of marketing they get (promotions, new arrivals, tips,
surveys), kept in the consent ledger: each change is a ConsentEvent whose topic is the kind.

A member receives a kind until their latest event for it is an opt-out. A campaign names its
kind (`category`); the planner skips those who declined it (`declined_members`). The choice
is made by a reply (`TD促销` declines, `DY促销` takes back) or on the member's page, reached
by a signed link (`preference_link`, `{preference_link}` in a template; its token is made in
`preference_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from tidings import clock, keys
from tidings.config import Settings
from tidings.db import read_frame
from tidings.inbound.context import Effects, ReplyContext
from tidings.inbound.keywords import compact
from tidings.members.models import ConsentEvent, ConsentKind
from tidings.notifications.preference_tokens import day_number, link_for, link_signing, read_token

SOURCE_REPLY = "sms_reply"
SOURCE_PAGE = "preference_page"
SECONDS_PER_DAY = 86_400
LINK_SALT = "tidings-preferences"
FORM_SALT = "tidings-preferences-form"
FORM_SECONDS = 3600  # how long a page's form may be sent back


class PreferenceError(ValueError):
    """A preference request that cannot be used: a bad kind, or an expired or forged link."""


def topics(settings: Settings) -> dict[str, str]:
    """The kinds members may decline, each with its word: {'promotions': '促销', ...}."""
    found = {}
    for part in settings.preference_topics.split(";"):
        kind, _, word = part.partition("=")
        if kind.strip() and word.strip():
            found[kind.strip()] = word.strip()
    return found


def check_topic(topic: str, settings: Settings) -> str:
    """Returns `topic` if members may decline it, else says which kinds there are."""
    known = topics(settings)
    if topic not in known:
        raise PreferenceError(
            f"message category '{topic}' is not one of {', '.join(sorted(known))}"
            " (TIDINGS_PREFERENCE_TOPICS)"
        )
    return topic


@dataclass(frozen=True)
class PreferenceKeyword:
    """A reply that declines or takes back one kind."""

    topic: str
    kind: ConsentKind


def keyword_of(text: str, settings: Settings) -> PreferenceKeyword | None:
    """The kind a reply declines (TD促销) or takes back (DY促销), or None."""
    said = compact(text)
    stop, resume = (
        compact(settings.preference_stop_prefix),
        compact(settings.preference_resume_prefix),
    )
    for topic, word in topics(settings).items():
        target = compact(word)
        if stop and said in (stop + target, target + stop):
            return PreferenceKeyword(topic, ConsentKind.OPT_OUT)
        if resume and said in (resume + target, target + resume):
            return PreferenceKeyword(topic, ConsentKind.OPT_IN)
    return None


# What a member is told after a reply that changes a preference.
CONFIRM_DECLINED = "已为您停止{word}类消息，其他消息照常。回复{resume}{word}可恢复。"
CONFIRM_RESUMED = "已为您恢复{word}类消息。回复{stop}{word}可再次停止。"


def apply_replies(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Records each reply's preference change in the consent ledger and confirms it."""
    for ctx in contexts:
        found = keyword_of(ctx.text, settings)
        if found is None or ctx.member_id is None:
            continue
        wording = CONFIRM_DECLINED if found.kind is ConsentKind.OPT_OUT else CONFIRM_RESUMED
        word = topics(settings)[found.topic]
        effects.answers.append(
            ctx.answer(
                wording.format(
                    word=word,
                    stop=settings.preference_stop_prefix,
                    resume=settings.preference_resume_prefix,
                )
            )
        )
        record(
            db_session=db_session,
            changes=[(ctx.member_id, found.topic, found.kind)],
            source=SOURCE_REPLY,
            text_shown=ctx.text,
            now=ctx.received_at,
        )


def current(*, db_session: Session, member_id: int, settings: Settings) -> dict[str, bool]:
    """Which kinds a member receives: {'promotions': True, ...}."""
    latest: dict[str, ConsentKind] = {}
    query = (
        select(ConsentEvent.topic, ConsentEvent.kind)
        .where(ConsentEvent.member_id == member_id, ConsentEvent.topic.in_(list(topics(settings))))
        .order_by(ConsentEvent.occurred_at, ConsentEvent.id)
    )
    for topic, kind in db_session.execute(query).all():
        latest[topic] = kind
    return {topic: latest.get(topic) is not ConsentKind.OPT_OUT for topic in topics(settings)}


def record(
    *,
    db_session: Session,
    changes: Sequence[tuple[int, str, ConsentKind]],
    source: str,
    text_shown: str | None,
    now: datetime,
) -> int:
    """Adds one consent event per (member, kind, opt-in or opt-out) change."""
    rows = [
        {
            "member_id": member_id,
            "kind": kind,
            "topic": topic,
            "source": source,
            "text_shown": (text_shown or "")[:500] or None,
            "occurred_at": now,
            "created_at": now,
        }
        for member_id, topic, kind in changes
    ]
    if rows:
        db_session.execute(insert(ConsentEvent), rows)
    return len(rows)


def declined_members(engine: Engine, *, topic: str) -> pl.Series:
    """The ids of members whose latest choice about `topic` is to decline it."""
    events = read_frame(
        engine,
        "SELECT member_id, kind, occurred_at, id FROM consent_events WHERE topic = "
        f"'{topic.replace(chr(39), '')}'",
        schema={
            "member_id": pl.Int64,
            "kind": pl.String,
            "occurred_at": pl.Datetime("us", "UTC"),
            "id": pl.Int64,
        },
    )
    latest = events.sort("occurred_at", "id").group_by("member_id").agg(pl.col("kind").last())
    return latest.filter(pl.col("kind") == ConsentKind.OPT_OUT.value)["member_id"]


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(keys.secret(settings, "preference"), salt=salt)


def preference_link(member_id: int, settings: Settings, *, now: datetime | None = None) -> str:
    """The member's own page link, signed: {short_link_base}/p/{token} (`{preference_link}`
    in a template shows the same)."""
    return link_for(member_id, link_signing(settings, now=now))


EXPIRED = "this link has expired; reply to any of our messages for a new one"
FORGED = "this link is not valid; check that it was copied whole"


def member_of(
    token: str, settings: Settings, *, salt: str = LINK_SALT, days: float | None = None
) -> int:
    """The member a signed token names, or a PreferenceError when forged or expired."""
    days = days if days is not None else settings.preference_link_days
    if salt == LINK_SALT and "." not in token:
        found = read_token(token, secret=keys.secret(settings, "preference"))
        if found is None:
            raise PreferenceError(FORGED)
        member_id, made = found
        if day_number(clock.now()) - made > days:
            raise PreferenceError(EXPIRED)
        return member_id
    # Form tokens, and page links made before links were shortened.
    try:
        value = _serializer(settings, salt).loads(token, max_age=int(days * SECONDS_PER_DAY))
    except SignatureExpired:
        raise PreferenceError(EXPIRED) from None
    except BadSignature:
        raise PreferenceError(FORGED) from None
    return int(value)


def form_token(member_id: int, settings: Settings) -> str:
    """The page form's anti-forgery token: signed, for this member, short-lived."""
    return _serializer(settings, FORM_SALT).dumps(member_id)


def form_member(token: str, settings: Settings) -> int:
    """The member a form token was made for; a PreferenceError when forged or stale."""
    return member_of(token, settings, salt=FORM_SALT, days=FORM_SECONDS / SECONDS_PER_DAY)
