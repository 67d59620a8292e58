"""Request and response bodies of the segments API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from tidings.members.schemas import Member


class RuleInput(BaseModel):
    """A rule as text (`rule`) or as the JSON tree of the console's builder (`tree`)."""

    rule: str | None = Field(None, description='Rule text, e.g. tier == "gold".', max_length=10_000)
    tree: dict[str, Any] | None = Field(None, description="The rule's JSON tree.")

    @model_validator(mode="after")
    def one_form(self) -> RuleInput:
        if (self.rule is None) == (self.tree is None):
            raise ValueError("send the rule either as 'rule' (text) or as 'tree' (JSON), not both")
        return self


class SegmentCreate(RuleInput):
    """A new saved segment."""

    name: str = Field(..., description="Name, e.g. recent-complainers.", max_length=100)
    description: str | None = Field(None, description="What the segment is for.")


class SegmentUpdate(RuleInput):
    """A saved segment's new rule (and description)."""

    description: str | None = Field(None, description="What the segment is for.")


class Segment(BaseModel):
    """A saved segment with its size at the last count."""

    name: str
    rule: str
    tree: dict[str, Any]
    description: str | None
    size: int | None = Field(None, description="Members at the last count; null if it fails.")
    counted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CountResult(BaseModel):
    """How many members a rule matches, and the first few member ids."""

    count: int
    sample: list[int]


class ParseResult(BaseModel):
    """A rule in canonical text and as a JSON tree."""

    text: str
    tree: dict[str, Any]


class FieldInfo(BaseModel):
    """A field a rule can use."""

    name: str
    type: str
    zh: str
    en: str


class SampleResult(BaseModel):
    """How many members a rule matches, and the first few of them as the console shows them."""

    count: int
    members: list[Member]
