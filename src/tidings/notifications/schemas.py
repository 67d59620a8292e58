"""Request and response bodies of the transactional messages API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, HttpUrl, model_validator

from tidings.http import MAX_ROW_ID
from tidings.notifications.models import NotificationKind

Value = str | int | float | None
MAX_BATCH = 500  # messages in one `POST /api/v1/messages:batch`


class MessageCreate(BaseModel):
    """A transactional message: a template (or text) for a member (or a phone), sent at once."""

    idempotency_key: str = Field(
        min_length=1,
        max_length=80,
        description="Your key for this message: the same key never sends twice and returns"
        " the first answer.",
    )
    kind: NotificationKind = Field(NotificationKind.NOTIFICATION)
    template: str | None = Field(
        None,
        max_length=1000,
        description="Text with {placeholders} filled from `values` (and the member's name,"
        " surname, points, tier). A verification's template needs {code}.",
    )
    text: str | None = Field(None, max_length=1000, description="Fixed text, sent as written.")
    member_id: int | None = Field(None, ge=1, le=MAX_ROW_ID)
    phone: str | None = Field(None, max_length=32, description="A mobile, any common form.")
    values: dict[str, Value] = Field(default_factory=dict)
    urgent: bool = Field(
        False,
        description="Goes even in quiet hours (a verification always does); otherwise a"
        " notice asked for at night waits for the morning.",
    )
    callback_url: HttpUrl | None = Field(
        None, description="Receives each status change as a signed JSON post."
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> MessageCreate:
        if self.template is not None and self.text is not None:
            raise ValueError("give a template or a text, not both")
        if self.kind is NotificationKind.NOTIFICATION and self.template is None and not self.text:
            raise ValueError("a notification needs a template or a text")
        if (self.member_id is None) == (self.phone is None):
            raise ValueError("give the recipient as a member_id or a phone, not both")
        return self


class MessageBatch(BaseModel):
    """Up to 500 transactional messages; each is answered on its own."""

    messages: list[MessageCreate] = Field(min_length=1, max_length=MAX_BATCH)


class MessageAccepted(BaseModel):
    """What became of one message: queued (with when it goes) or skipped (with why)."""

    id: int
    idempotency_key: str
    kind: NotificationKind
    state: str
    send_at: datetime | None
    skip_reason: str | None = None
    verification_id: str | None = None
    replayed: bool = Field(False, description="True when the key was seen before.")


class BatchItem(BaseModel):
    """One message of a batch: its answer, or why it was refused (nothing was sent)."""

    index: int
    status: int
    message: MessageAccepted | None = None
    error: str | None = None


class BatchAnswer(BaseModel):
    """The answers of a batch, in the order given."""

    accepted: int
    refused: int
    results: list[BatchItem]


class StateChange(BaseModel):
    """One step of a message's history."""

    state: str
    at: datetime
    detail: str | None = None


class MessageStatus(BaseModel):
    """A message's state and history (receipts and state times); codes are masked."""

    id: int
    kind: str
    state: str
    phone: str
    text: str
    parts: int
    cost_cents: int
    skip_reason: str | None
    error_code: str | None
    send_at: datetime
    idempotency_key: str | None
    callback_url: str | None
    history: list[StateChange]


class VerificationCheck(BaseModel):
    """The code a person typed."""

    code: str = Field(min_length=1, max_length=12)


class VerificationResult(BaseModel):
    """Whether the code was right, and how many tries are left."""

    verified: bool
    status: Literal["verified", "wrong_code", "expired", "locked", "already_verified"]
    attempts_left: int
