"""Two sends of one day for the health tests: campaign "weekend" through provider ali with
poor delivery, opt-outs and a complaint, and campaign "quiet" through ten, healthy but with
few replies. The expected counts are kept beside the rows that make them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.campaigns.sources import phone_hash
from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState
from tidings.inbound.models import Reply
from tidings.members.models import ConsentEvent, ConsentKind, Member, Suppression
from tidings.members.models import SuppressionReason as Reason

SENT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NOW = SENT + timedelta(days=6)


@dataclass
class Send:
    """What one campaign's messages met, as the test expects to read it back."""

    campaign_id: int = 0
    provider: str = ""
    delivered: int = 0
    undelivered: int = 0
    replied: int = 0
    opted_out: int = 0
    complained: int = 0
    message_ids: list[int] = field(default_factory=list)


def _send(
    session, name: str, provider: str, delivered: int, failed: int, offset: int
) -> tuple[Send, list[Message]]:  # type: ignore[no-untyped-def]
    campaign = Campaign(name=name, status=CampaignStatus.RUNNING, provider=provider)
    session.add(campaign)
    session.flush()
    send = Send(campaign.id, provider, delivered, failed)
    messages = []
    for number in range(delivered + failed):
        member = Member(phone=f"+86138{offset + number:08d}")
        session.add(member)
        session.flush()
        state = MessageState.DELIVERED if number < delivered else MessageState.FAILED
        message = Message(
            dedupe_key=f"{name}-{number}",
            campaign_id=campaign.id,
            member_id=member.id,
            phone=member.phone,
            text="【tidings】周末特惠",
            state=state,
            attempts=1,
            provider=provider,
            submitted_at=SENT + timedelta(seconds=number),
            final_at=SENT + timedelta(minutes=1, seconds=number),
        )
        messages.append(message)
    session.add_all(messages)
    session.flush()
    send.message_ids = [message.id for message in messages]
    return send, messages


def _reply(session, message: Message, text: str, intent: str | None, minutes: int) -> None:  # type: ignore[no-untyped-def]
    session.add(
        Reply(
            provider=message.provider,
            provider_message_id=f"mo-{message.id}-{minutes}",
            phone=message.phone,
            member_id=message.member_id,
            text=text,
            received_at=SENT + timedelta(minutes=minutes),
            in_reply_to_message_id=message.id,
            intent=intent,
        )
    )


def build(engine: Engine) -> dict[str, Send]:
    """Writes both sends and what followed them; returns what each should count."""
    with session_scope(engine) as session:
        weekend, sent = _send(session, "weekend", "ali", delivered=190, failed=10, offset=0)
        for message in sent[:12]:
            _reply(session, message, "好的", "thanks", 30)
        _reply(session, sent[12], "TD", "opt_out", 40)
        # An opt-out through the console an hour after the message counts for it ...
        session.add(
            ConsentEvent(
                member_id=sent[20].member_id,
                kind=ConsentKind.OPT_OUT,
                source="console",
                occurred_at=SENT + timedelta(hours=1),
            )
        )
        # ... one five days later does not: it is past the response window.
        session.add(
            ConsentEvent(
                member_id=sent[21].member_id,
                kind=ConsentKind.OPT_OUT,
                source="console",
                occurred_at=SENT + timedelta(days=5),
            )
        )
        session.add(
            Suppression(
                phone_hash=phone_hash(sent[30].phone),
                reason=Reason.COMPLAINED,
                source="hotline",
                created_at=SENT + timedelta(hours=2),
            )
        )
        # A complaint from a phone no message went to is nobody's.
        session.add(
            Suppression(
                phone_hash=phone_hash("+8613999999999"),
                reason=Reason.COMPLAINED,
                source="hotline",
                created_at=SENT + timedelta(hours=2),
            )
        )
        weekend.replied, weekend.opted_out, weekend.complained = 13, 2, 1

        quiet, calm = _send(session, "quiet", "ten", delivered=150, failed=0, offset=1000)
        for message in calm[:3]:
            _reply(session, message, "收到", "thanks", 50)
        quiet.replied = 3
    return {"weekend": weekend, "quiet": quiet}
