"""Handling every stored reply: decide what each asks for, then apply the effects of the
whole batch together (suppressions, consent events, records, tickets, answers).

The order of decisions is the order of stakes: an opt-out first (it must never be missed;
only a preference keyword such as TD促销, which names one kind of message, goes before it,
since TD inside it would read as stopping everything), then opt-in and help, then what the
message it answers makes of it (a survey score, a "1" to a delivery offer), then the
free-text classifier. A complaint is never answered by a machine. A reply whose intent is
unclear opens a ticket with suggested answers, so no reply goes unheard. Replies then fire
the operator's triggers on `reply` or `reply:<intent>` (`tidings.triggers.reactions`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.inbound import services
from tidings.inbound.answers import queue_answers
from tidings.inbound.context import Effects, ReplyContext, load_contexts
from tidings.inbound.intents import Intent, classifier_for
from tidings.inbound.keywords import KeywordRules, compact, detect
from tidings.inbound.models import Reply
from tidings.inbound.texts import DEFAULT_TEXTS, text_for
from tidings.inbound.tickets import flag_breaches, open_tickets
from tidings.notifications import preferences
from tidings.triggers.reactions import replies_arrived

replies_table: Table = Reply.__table__  # type: ignore[assignment]
Service = Callable[..., None]
SERVICES: dict[str, Service] = {
    "opt_out": services.opt_out,
    "opt_in": services.opt_in,
    "complaint": services.complaint,
    "points": services.points,
    "stock": services.stock,
    "delivery": services.delivery,
    "booking": services.booking,
    "survey": services.survey,
    "coupon": services.coupon,
    "preference": preferences.apply_replies,
}
SILENT = {"empty", Intent.THANKS.value}  # nothing to answer, nothing to do
_NOT_A_REQUEST = (None, Intent.THANKS)
SUGGESTIONS = 3  # answers offered to the agent on a ticket


@dataclass(frozen=True, slots=True)
class Decision:
    """What a reply is taken for, how sure that is, and the runners-up for a ticket."""

    intent: str
    confidence: float
    ranked: tuple[tuple[str, float], ...] = ()


def _offered(ctx: ReplyContext, types: str) -> bool:
    wanted = {part.strip() for part in types.split(",") if part.strip()}
    return ctx.offer_type is not None and ctx.offer_type in wanted


def decide(ctx: ReplyContext, *, settings: Settings, rules: KeywordRules) -> Decision:
    """What `ctx`'s reply asks for."""
    if not compact(ctx.text):
        return Decision("empty", 1.0)
    # Before the opt-out words: TD促销 declines promotions only, not all marketing.
    if preferences.keyword_of(ctx.text, settings) is not None:
        return Decision("preference", 1.0)
    keyword = detect(ctx.text, rules)
    if keyword is not None:
        return Decision(keyword.kind.value, 1.0)
    guess = classifier_for(settings.reply_intent_synonyms).classify(ctx.text)
    ranked = tuple((intent.value, score) for intent, score in guess.ranked)
    if guess.intent is Intent.COMPLAINT and guess.confidence >= settings.reply_intent_threshold:
        return Decision(Intent.COMPLAINT.value, guess.confidence, ranked)
    recent = ctx.message_sent_at is not None and ctx.received_at - ctx.message_sent_at <= timedelta(
        hours=settings.reply_survey_hours
    )
    if recent and _offered(ctx, settings.reply_survey_offer_types):
        answer = services.survey_score(ctx.text)
        # A bare word counts as an answer unless it plainly asks for something else (积分).
        if answer is not None and (answer[0] is not None or guess.intent in _NOT_A_REQUEST):
            return Decision("survey", 1.0)
    if recent and _offered(ctx, settings.reply_delivery_offer_types) and compact(ctx.text) == "1":
        return Decision(Intent.DELIVERY.value, 1.0)
    if guess.intent is None:
        return Decision("unknown", 0.0, ranked)
    return Decision(guess.intent.value, guess.confidence, ranked)


def _suggestions(decision: Decision, settings: Settings) -> list[dict[str, object]]:
    found = []
    for intent, score in decision.ranked[:SUGGESTIONS]:
        text = settings.reply_texts.get(intent) or DEFAULT_TEXTS.get(intent)
        found.append({"intent": intent, "confidence": round(score, 2), "text": text})
    return found


def _route(
    ctx: ReplyContext, decision: Decision, settings: Settings, effects: Effects
) -> str | None:
    """The service that handles the reply, or None once it is answered or ticketed here."""
    intent = decision.intent
    if intent in SILENT:
        return None
    if intent in ("opt_out", "opt_in", "complaint", "survey", "preference"):
        return intent
    if intent == "help":
        effects.answers.append(ctx.answer(text_for("help", settings)))
        return None
    confident = decision.confidence >= settings.reply_intent_threshold
    if confident and intent in SERVICES:
        return intent
    brand_text = settings.reply_texts.get(intent)
    if confident and brand_text:
        effects.answers.append(ctx.answer(brand_text))
        return None
    effects.tickets.append(ctx.ticket(intent, suggestions=_suggestions(decision, settings)))
    return None


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling a batch did: replies by intent, answers queued, tickets touched."""

    intents: dict[str, int]
    answers: int
    tickets: int


def handle_replies(
    *, db_session: Session, reply_ids: Sequence[int], now: datetime, settings: Settings
) -> Handled:
    """Handles the replies `reply_ids` (new ones, just stored) and marks them handled."""
    contexts = load_contexts(db_session, reply_ids)
    if not contexts:
        return Handled({}, 0, 0)
    rules = KeywordRules.from_settings(settings)
    effects = Effects()
    by_service: dict[str, list[ReplyContext]] = {}
    decisions: list[tuple[ReplyContext, Decision]] = []
    for ctx in contexts:
        decision = decide(ctx, settings=settings, rules=rules)
        decisions.append((ctx, decision))
        service = _route(ctx, decision, settings, effects)
        if service is not None:
            by_service.setdefault(service, []).append(ctx)
    for name, group in by_service.items():
        SERVICES[name](db_session, group, effects, settings=settings, now=now)
    queued = queue_answers(
        db_session=db_session, answers=effects.answers, now=now, settings=settings
    )
    ticket_ids = open_tickets(
        db_session=db_session, drafts=effects.tickets, now=now, settings=settings
    )
    flag_breaches(db_session=db_session, now=now)
    # After the services, so an opt-in or a stop in this batch already counts for the policy.
    replies_arrived(
        db_session,
        replies=[
            (ctx.reply_id, ctx.member_id, d.intent, ctx.received_at, ctx.text)
            for ctx, d in decisions
        ],
        now=now,
    )
    db_session.execute(
        update(replies_table)
        .where(replies_table.c.id == bindparam("reply_id"))
        .values(intent=bindparam("taken_as"), confidence=bindparam("sureness"), handled_at=now),
        [
            {"reply_id": ctx.reply_id, "taken_as": d.intent, "sureness": round(d.confidence, 3)}
            for ctx, d in decisions
        ],
    )
    counted = Counter(decision.intent for _, decision in decisions)
    return Handled(dict(counted), len(queued), len(set(ticket_ids)))
