"""Shapes of triggers and events in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tidings.http import MAX_ROW_ID

MAX_EVENTS = 10_000  # events in one request
WeatherKind = Literal["rain", "heat", "cold", "typhoon"]


class TriggerUpdate(BaseModel):
    """What may change on a trigger; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    config: dict[str, Any] | None = Field(None, examples=[{"days_before": 5}])
    template: str | None = None
    condition: str | None = Field(None, examples=['tier == "gold"'])
    exit_condition: str | None = None
    delay_minutes: int | None = Field(None, ge=0)
    expiry_minutes: int | None = Field(None, ge=0)


class TriggerCreate(BaseModel):
    """An operator's trigger: an event type or a date field, a condition, a delay, a template,
    an expiry and an exit condition."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100, examples=["浏览未购"])
    event_type: str | None = Field(None, max_length=50, examples=["page_view"])
    date_field: str | None = Field(None, max_length=50, examples=["next_run_out_on"])
    template: str = Field(
        ..., min_length=1, examples=["{surname|亲爱的会员}，您看中的{event_item}还在等您"]
    )
    condition: str | None = Field(None, examples=['tier == "gold"'])
    exit_condition: str | None = Field(None, examples=["days_since_last_order < 1"])
    delay_minutes: int = Field(0, ge=0, description="After the event, before the message goes.")
    offset_days: int = Field(0, description="Days after the date field (negative: before).")
    window_days: int = Field(1, ge=0, description="Days after the due day it may still fire.")
    expiry_minutes: int | None = Field(None, ge=0)
    offer_type: str | None = Field(None, max_length=64)
    enabled: bool = True


class Trigger(BaseModel):
    """A trigger as the API shows it."""

    id: int
    name: str
    kind: str
    custom: bool
    reacts_to: str
    summary: str | None
    enabled: bool
    config: dict[str, Any]
    template: str
    condition: str | None
    exit_condition: str | None
    event_type: str | None
    date_field: str | None
    delay_minutes: int
    expiry_minutes: int | None
    offer_type: str | None
    message_kind: str
    firings: dict[str, int]


class MemberRef(BaseModel):
    """Who an event is about: the member's id in tidings, the retailer's code, or the phone."""

    member_id: int | None = Field(None, ge=1, le=MAX_ROW_ID)
    member_code: str | None = None
    phone: str | None = None

    @model_validator(mode="after")
    def _one_given(self) -> MemberRef:
        if self.member_id is None and not self.member_code and not self.phone:
            raise ValueError("name the member by member_id, member_code or phone")
        return self


class EventIn(MemberRef):
    """One behaviour event: a cart, a page view, anything a custom trigger may react to."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None, max_length=100, description="The sender's id: an event sent twice is kept once."
    )
    kind: str = Field(..., min_length=1, max_length=50, examples=["cart"])
    occurred_at: AwareDatetime = Field(..., examples=["2026-12-02T09:30:00+08:00"])
    payload: dict[str, Any] | None = Field(None, examples=[{"product": "有机牛奶 1L"}])


class EventsBatch(BaseModel):
    """A batch of events."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(..., max_length=MAX_EVENTS)


class EventError(BaseModel):
    """Why one event of a batch was not taken."""

    index: int
    reason: str


class EventsResult(BaseModel):
    """What a batch did: events kept, those seen before, rejects, and what fired."""

    received: int
    stored: int
    duplicates: int
    rejected: int
    errors: list[EventError]
    fired: dict[str, dict[str, Any]]


class WeatherAlert(BaseModel):
    """A weather alert for a city."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str = Field(..., min_length=1, max_length=60, description="Once per alert id.")
    city: str = Field(..., min_length=1, max_length=100, examples=["上海"])
    kind: WeatherKind
    occurred_at: AwareDatetime | None = None


class LocationPing(MemberRef):
    """Where a member is now (from the app, with their permission)."""

    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(..., ge=-90, le=90)
    longitude: float = Field(..., ge=-180, le=180)
    occurred_at: AwareDatetime | None = None


class Reaction(BaseModel):
    """What an event endpoint did."""

    stored: bool
    fired: dict[str, dict[str, Any]]
    detail: str | None = None


def utc(moment: datetime) -> datetime:
    """An aware time in UTC."""
    from datetime import UTC

    return moment.astimezone(UTC)
