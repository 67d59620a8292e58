"""Keyword services: what a reply asks for, answered from live data, one batch at a time.

Consent (opt-out, opt-in, complaint) changes the suppression list and the consent ledger at
once, before any answer is queued, so a campaign planned a moment later already leaves the
member out. Points come from the member's `points` column; the points ledger says which of
them expire soon, and when.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns.models import Campaign
from tidings.campaigns.sources import phone_hash
from tidings.config import Settings
from tidings.db import is_sqlite
from tidings.dispatch.models import Message
from tidings.inbound.booking_times import parse_when
from tidings.inbound.context import Effects, ReplyContext
from tidings.inbound.keywords import compact
from tidings.inbound.models import Booking, SurveyResponse, TicketPriority
from tidings.inbound.stock import stock_answer
from tidings.inbound.texts import text_for
from tidings.loyalty.models import PointsLot
from tidings.loyalty.points import UTC_TIME, expiring_soon
from tidings.members.models import ConsentEvent, ConsentKind, Suppression, SuppressionReason

SOURCE = "sms_reply"  # the consent ledger's source for what members text back
COUPON_LOOKBACK = timedelta(days=30)  # how far back a coupon message is resent from
CONFIRMS_OPT_OUT_ITSELF = frozenset({"twilio"})  # provider types that answer STOP themselves
SURVEY_WORDS = {
    "非常满意": 5, "很满意": 5, "很好": 5, "满意": 4, "好": 4, "还行": 3, "一般": 3,
    "不满意": 2, "不好": 2, "差": 1, "很差": 1, "非常差": 1,
}  # fmt: skip
SURVEY_SCORE = re.compile(r"^([1-5])分?$")
MAX_SURVEY_WORD = 12  # characters; longer answers are conversations, not survey answers


def _suppress(
    db_session: Session, contexts: Sequence[ReplyContext], reason: SuppressionReason
) -> set[str]:
    """Adds the phones to the suppression list; returns the phones that were not on it.

    The insert skips phones already there, so two callbacks racing to suppress the same
    phone add one row and only one of them learns the phone is new (one confirmation).
    """
    hashes = {ctx.phone: phone_hash(ctx.phone) for ctx in contexts}
    if not hashes:
        return set()
    dialect = sqlite if is_sqlite(db_session) else postgresql
    statement = (
        dialect.insert(Suppression.__table__)
        .on_conflict_do_nothing(index_elements=["phone_hash", "reason"])
        .returning(Suppression.__table__.c.phone_hash)
    )
    rows = [
        {"phone_hash": key, "reason": reason, "source": SOURCE, "created_at": clock.now()}
        for key in sorted(set(hashes.values()))
    ]
    added = set(db_session.execute(statement, rows).scalars())
    return {phone for phone, key in hashes.items() if key in added}


def _consent(
    db_session: Session, contexts: Sequence[ReplyContext], kind: ConsentKind, now: datetime
) -> None:
    rows = [
        {
            "member_id": ctx.member_id,
            "kind": kind,
            "topic": "marketing",
            "source": SOURCE,
            "text_shown": ctx.text[:500],
            "occurred_at": ctx.received_at,
            "created_at": now,
        }
        for ctx in contexts
        if ctx.member_id is not None
    ]
    if rows:
        db_session.execute(insert(ConsentEvent), rows)


def _first_per_phone(contexts: Sequence[ReplyContext]) -> list[ReplyContext]:
    seen: dict[str, ReplyContext] = {}
    for ctx in contexts:
        seen.setdefault(ctx.phone, ctx)
    return list(seen.values())


def opt_out(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Suppresses marketing at once, records the opt-out, and confirms it once per phone.

    Twilio confirms STOP itself and refuses anything more to that number, so replies that
    came through a Twilio account get no second confirmation from us.
    """
    first = _first_per_phone(contexts)
    new = _suppress(db_session, first, SuppressionReason.OPTED_OUT)
    changed = [ctx for ctx in first if ctx.phone in new]
    _consent(db_session, changed, ConsentKind.OPT_OUT, now)
    effects.answers += [
        ctx.answer(text_for("opt_out", settings))
        for ctx in changed
        if _account_type(ctx.provider, settings) not in CONFIRMS_OPT_OUT_ITSELF
    ]


def _account_type(account: str, settings: Settings) -> str | None:
    config = settings.provider_accounts.get(account) or {}
    return config.get("type")


def opt_in(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Lifts the member's own opt-out and complaint, records the opt-in, and confirms it."""
    first = _first_per_phone(contexts)
    db_session.execute(
        delete(Suppression).where(
            Suppression.phone_hash.in_([phone_hash(ctx.phone) for ctx in first]),
            Suppression.reason.in_([SuppressionReason.OPTED_OUT, SuppressionReason.COMPLAINED]),
        )
    )
    _consent(db_session, first, ConsentKind.OPT_IN, now)
    effects.answers += [ctx.answer(text_for("opt_in", settings)) for ctx in first]


def complaint(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Never answered by a machine: an urgent ticket, and no more marketing to the member."""
    _suppress(db_session, _first_per_phone(contexts), SuppressionReason.COMPLAINED)
    effects.tickets += [ctx.ticket("complaint", priority=TicketPriority.URGENT) for ctx in contexts]


def points(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """The member's points balance, and the points expiring soon with their first date."""
    soon = _expiring(db_session, [c.member_id for c in contexts if c.member_id], settings, now)
    for ctx in contexts:
        if ctx.member_id is None:
            effects.tickets.append(ctx.ticket("points"))
            continue
        fields: dict[str, object] = {"name": ctx.member_name, "points": f"{ctx.points:,}"}
        name = "points"
        if ctx.member_id in soon:
            expiring, first = soon[ctx.member_id]
            fields |= {"expiring": f"{expiring:,}", "expiry_date": f"{first:%Y-%m-%d}"}
            name = "points_expiring"
        effects.answers.append(ctx.answer(text_for(name, settings, fields)))


def _expiring(
    db_session: Session, member_ids: list[int], settings: Settings, now: datetime
) -> dict[int, tuple[int, date]]:
    """Per member, the points expiring within TIDINGS_POINTS_EXPIRING_DAYS and the first
    local date among them, read in one query for the batch."""
    if not member_ids:
        return {}
    horizon = now + timedelta(days=settings.points_expiring_days)
    rows = db_session.execute(
        select(PointsLot.member_id, PointsLot.remaining, PointsLot.expires_at).where(
            PointsLot.member_id.in_(set(member_ids)),
            PointsLot.remaining > 0,
            PointsLot.expires_at > now,
            PointsLot.expires_at <= horizon,
        )
    ).all()
    lots = pl.DataFrame(
        rows,
        schema={"member_id": pl.Int64, "remaining": pl.Int64, "expires_at": UTC_TIME},
        orient="row",
    )
    soon = expiring_soon(
        lots, now=now, days=settings.points_expiring_days, timezone=settings.default_timezone
    )
    return {m: (n, d) for m, n, d in soon.iter_rows()}


def stock(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Stock of the product named at the member's store, and the nearest stores having it."""
    for ctx in contexts:
        name, fields = stock_answer(db_session, ctx)
        effects.answers.append(ctx.answer(text_for(name, settings, fields)))


def delivery(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """A delivery ticket for the member's store, and word that the store will call."""
    for ctx in contexts:
        effects.tickets.append(ctx.ticket("delivery"))
        fields = {"store": ctx.store_name or "门店"}
        effects.answers.append(ctx.answer(text_for("delivery", settings, fields)))


def booking(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """A booking for the day and time named, confirmed; or a question when none is named."""
    rows = []
    for ctx in contexts:
        zone = ZoneInfo(ctx.timezone or settings.default_timezone)
        when = parse_when(ctx.text, now.astimezone(zone))
        if when is None or ctx.member_id is None:
            effects.answers.append(ctx.answer(text_for("booking_when", settings)))
            continue
        rows.append(
            {
                "member_id": ctx.member_id,
                "store_id": ctx.store_id,
                "reply_id": ctx.reply_id,
                "booked_for": when,
                "day": when.date(),
                "note": ctx.text[:500],
                "status": "booked",
                "created_at": now,
            }
        )
        shown = f"{when.month}月{when.day}日{when:%H:%M}"
        fields = {"store": ctx.store_name or "门店", "when": shown}
        effects.answers.append(ctx.answer(text_for("booking", settings, fields)))
    if rows:
        db_session.execute(insert(Booking), rows)


def survey_score(text: str) -> tuple[int | None, str] | None:
    """A survey answer's score (or None for a word without one), or None if it is no answer."""
    word = compact(text)
    if not word or len(word) > MAX_SURVEY_WORD:
        return None
    match = SURVEY_SCORE.match(word)
    if match:
        return int(match[1]), word
    return SURVEY_WORDS.get(word), word


def survey(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Each answer attached to the survey message's campaign, with thanks."""
    rows = []
    for ctx in contexts:
        score, word = survey_score(ctx.text) or (None, compact(ctx.text))
        rows.append(
            {
                "campaign_id": ctx.campaign_id,
                "message_id": ctx.message_id,
                "member_id": ctx.member_id,
                "reply_id": ctx.reply_id,
                "score": score,
                "answer": word[:100],
                "created_at": now,
            }
        )
        effects.answers.append(ctx.answer(text_for("survey", settings)))
    if rows:
        db_session.execute(insert(SurveyResponse), rows)


def coupon(
    db_session: Session,
    contexts: Sequence[ReplyContext],
    effects: Effects,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Sends again the member's latest message of a campaign with a coupon (it carries the
    code); with none in the last 30 days, a ticket for a person to look into it."""
    members = sorted({ctx.member_id for ctx in contexts if ctx.member_id is not None})
    latest: dict[int, str] = {}
    if members:
        rows = db_session.execute(
            select(Message.member_id, Message.text)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(
                Message.member_id.in_(members),
                Campaign.coupon.is_not(None),
                Message.submitted_at.is_not(None),
                Message.submitted_at >= now - COUPON_LOOKBACK,
            )
            .order_by(Message.submitted_at)
        )
        latest.update({member_id: text for member_id, text in rows if member_id is not None})
    for ctx in contexts:
        text = latest.get(ctx.member_id) if ctx.member_id is not None else None
        if text is None:
            effects.tickets.append(ctx.ticket("coupon"))
            effects.answers.append(ctx.answer(text_for("coupon_missing", settings)))
        else:
            effects.answers.append(ctx.answer(text))
