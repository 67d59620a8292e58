"""Members and queued messages for an account, and what became of them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, text

from tidings import clock
from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.models import Message, MessageState
from tidings.members.models import Member


def worker_settings(accounts: dict[str, dict[str, Any]], default: str) -> Settings:
    """Settings of a worker that sends at any hour and waits for receipts a while."""
    return Settings(
        provider_accounts=accounts,
        default_provider=default,
        dispatch_lease_seconds=10.0,
        dispatch_receipt_timeout=20.0,
        send_window="00:00-00:00",
        quiet_hours="",
    )


def queue(engine: Engine, provider: str, texts: dict[str, str]) -> dict[str, int]:
    """Queues one message per phone (a member each) and returns message ids by phone."""
    now = clock.now()
    with session_scope(engine) as session:
        campaign = Campaign(name="会员日", status=CampaignStatus.RUNNING, provider=provider)
        session.add(campaign)
        session.flush()
        ids = {}
        for n, (phone, body) in enumerate(texts.items()):
            member = Member(phone=phone, name=f"会员{n}")
            session.add(member)
            session.flush()
            message = Message(
                dedupe_key=f"{provider}:{campaign.id}:{phone}",
                campaign_id=campaign.id,
                member_id=member.id,
                phone=phone,
                text=body,
                state=MessageState.QUEUED,
                send_at=now - timedelta(minutes=1),
                provider=provider,
            )
            session.add(message)
            session.flush()
            ids[phone] = message.id
        return ids


def outcomes(engine: Engine) -> dict[str, tuple[str, str | None]]:
    """State and error code of every campaign message, by phone (answers to replies, such as
    opt-out confirmations, are tested with the replies)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT phone, state, error_code FROM messages WHERE campaign_id IS NOT NULL")
        )
        return {phone: (state, code) for phone, state, code in rows}


def replies(engine: Engine) -> list[tuple[str, str, int | None, int | None]]:
    """Stored replies as (phone, text, member id, message replied to)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT phone, text, member_id, in_reply_to_message_id FROM replies ORDER BY id")
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def receipt_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT COUNT(*) FROM delivery_receipts")).scalar_one())
