"""Operations on a campaign's messages: queue, pause, resume, cancel, count, complete.

Pause and resume act on the campaign row: workers claim and submit only messages of running
campaigns, so both take effect at the next claim, within a fraction of a second, also for
messages already queued or claimed. Cancel also moves every planned and queued message to
`cancelled`. These functions never commit; the command or request that calls them does.
"""

from __future__ import annotations

from sqlalchemy import Table, exists, func, select, update
from sqlalchemy.orm import Session

from tidings import clock
from tidings.campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    Campaign,
    CampaignStatus,
    CampaignStep,
)
from tidings.dispatch.models import Message, MessageState, sources

messages: Table = Message.__table__  # type: ignore[assignment]
UNFINISHED = (
    MessageState.PLANNED,
    MessageState.QUEUED,
    MessageState.SUBMITTING,
    MessageState.SUBMITTED,
)


class CampaignNotFound(LookupError):
    """No campaign has the id given."""


class CampaignStateError(ValueError):
    """The campaign is not in a state that allows the operation."""


def get(*, db_session: Session, campaign_id: int) -> Campaign:
    """Gets a campaign by id, or says that there is none."""
    campaign = db_session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignNotFound(
            f"there is no campaign {campaign_id}; list them with: tidings campaign list"
        )
    return campaign


def _move(campaign: Campaign, target: CampaignStatus, reason: str | None) -> None:
    if target not in CAMPAIGN_TRANSITIONS[campaign.status]:
        allowed = ", ".join(sorted(CAMPAIGN_TRANSITIONS[campaign.status])) or "nothing"
        raise CampaignStateError(
            f"campaign {campaign.id} is {campaign.status}; it cannot become {target}"
            f" (from {campaign.status} it can become: {allowed})"
        )
    campaign.status = target
    campaign.status_reason = reason
    campaign.updated_at = clock.now()


def queue_messages(*, db_session: Session, campaign_id: int, up_to_stage: int | None = None) -> int:
    """Moves a campaign's planned messages (of rollout stages up to `up_to_stage`) to queued."""
    now = clock.now()
    condition = [
        messages.c.campaign_id == campaign_id,
        messages.c.state.in_(sources(MessageState.QUEUED)),
        messages.c.state == MessageState.PLANNED,
    ]
    if up_to_stage is not None:
        condition.append(messages.c.rollout_stage <= up_to_stage)
    result = db_session.execute(
        update(messages).where(*condition).values(state=MessageState.QUEUED, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def start(*, db_session: Session, campaign_id: int) -> int:
    """Sets a campaign running and queues the planned messages of its current rollout stage."""
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    _move(campaign, CampaignStatus.RUNNING, None)
    db_session.flush()
    return queue_messages(
        db_session=db_session, campaign_id=campaign_id, up_to_stage=campaign.rollout_stage
    )


def pause(*, db_session: Session, campaign_id: int, reason: str = "paused by an operator") -> None:
    """Pauses a campaign: no more of its messages are claimed or submitted until resumed."""
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    _move(campaign, CampaignStatus.PAUSED, reason)
    db_session.flush()


def resume(*, db_session: Session, campaign_id: int) -> None:
    """Resumes a paused campaign: its queued messages are claimed again at once."""
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    if campaign.status is not CampaignStatus.PAUSED:
        raise CampaignStateError(
            f"campaign {campaign_id} is {campaign.status}, not paused: there is nothing to resume"
        )
    _move(campaign, CampaignStatus.RUNNING, None)
    db_session.flush()


def cancel(
    *, db_session: Session, campaign_id: int, reason: str = "cancelled by an operator"
) -> int:
    """Cancels a campaign and every message of it not yet handed to a provider."""
    campaign = get(db_session=db_session, campaign_id=campaign_id)
    _move(campaign, CampaignStatus.CANCELLED, reason)
    db_session.flush()
    result = db_session.execute(
        update(messages)
        .where(
            messages.c.campaign_id == campaign_id,
            messages.c.state.in_(sources(MessageState.CANCELLED)),
        )
        .values(
            state=MessageState.CANCELLED,
            skip_reason="campaign_cancelled",
            final_at=clock.now(),
            lease_owner=None,
            lease_until=None,
            updated_at=clock.now(),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def message_counts(*, db_session: Session, campaign_id: int) -> dict[str, int]:
    """Counts a campaign's messages by state."""
    rows = db_session.execute(
        select(messages.c.state, func.count())
        .where(messages.c.campaign_id == campaign_id)
        .group_by(messages.c.state)
    )
    return {str(MessageState(state)): int(n) for state, n in rows}


def complete_finished(*, db_session: Session) -> list[int]:
    """Marks running campaigns whose every message is settled as completed; returns their ids."""
    unfinished = exists().where(
        messages.c.campaign_id == Campaign.id, messages.c.state.in_(UNFINISHED)
    )
    planned = exists().where(messages.c.campaign_id == Campaign.id)
    # A campaign whose follow-up or countdown steps are still to come keeps running.
    steps_left = exists().where(
        CampaignStep.campaign_id == Campaign.id, CampaignStep.planned_at.is_(None)
    )
    ids = list(
        db_session.scalars(
            select(Campaign.id).where(
                Campaign.status == CampaignStatus.RUNNING, planned, ~unfinished, ~steps_left
            )
        )
    )
    for campaign_id in ids:
        campaign = get(db_session=db_session, campaign_id=campaign_id)
        _move(campaign, CampaignStatus.COMPLETED, None)
    db_session.flush()
    return ids
