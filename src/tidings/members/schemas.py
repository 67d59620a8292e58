"""Shapes of member data in and out of the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH_ROWS = 10_000  # rows one batch request may carry


class MemberIn(BaseModel):
    """One member as an integrator sends it; the same fields and cleaning as the CSV import."""

    model_config = ConfigDict(extra="forbid")

    phone: str | int | None = Field(None, examples=["+86 138 0013 8000"])
    member_code: str | int | None = Field(None, examples=["M0001"])
    name: str | None = None
    gender: str | int | None = Field(None, examples=["女"])
    birthday: str | None = Field(None, examples=["1990-01-02", "农历1990-03-04"])
    tier: str | None = None
    points: int | str | None = None
    store_code: str | None = Field(None, description="A store's code or name.")
    registered_at: str | None = Field(None, examples=["2024-05-01 10:00:00"])
    consent: bool | str | int | None = Field(None, description="Marketing consent: yes or no.")


class MembersBatch(BaseModel):
    """A batch of members to upsert."""

    members: list[MemberIn]


class RowError(BaseModel):
    """Why one row of a batch was not taken (`index` counts from 0)."""

    index: int
    reason: str


class BatchResult(BaseModel):
    """What a batch did: the counts of the CSV import and one error per rejected row."""

    rows: int
    inserted: int
    updated: int
    merged_duplicates: int
    rejected: int
    errors: list[RowError]


class Member(BaseModel):
    """A member as the API shows them (personal fields are null once erased)."""

    id: int
    member_code: str | None
    phone: str | None
    phone_status: str
    name: str | None
    gender: str | None
    birthday: str | None
    birthday_is_lunar: bool
    store_code: str | None
    tier: str | None
    points: int
    consent: str | None = Field(None, description="opted_in, opted_out or null (never asked).")
    registered_at: str | None
    tags: list[str]
