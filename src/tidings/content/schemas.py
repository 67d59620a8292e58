"""API shapes of this domain: a template to preview and the preview a member would read."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TemplatePreviewIn(BaseModel):
    """A template to render for one member (or for a sample member when none is named)."""

    text: str = Field(min_length=1, max_length=2000, examples=["{surname}您好，您有{points}积分"])
    member: str | None = Field(
        None, max_length=64, description="A member's code or phone; a sample member when null."
    )


class FindingOut(BaseModel):
    """One fault found in the rendered text, at characters [start, end)."""

    code: str
    severity: str
    start: int
    end: int
    term: str
    message: str


class TemplatePreview(BaseModel):
    """The framed text as the member would read it, its length, parts, cost and findings."""

    text: str | None = Field(description="Null when the member would be skipped.")
    skip_reason: str | None = None
    characters: int = 0
    encoding: str | None = None
    units: int = 0
    segments: int = Field(0, description="SMS parts the text is sent as.")
    cost_cents: int = Field(0, description="What one message costs, in cents (分).")
    findings: list[FindingOut] = []
