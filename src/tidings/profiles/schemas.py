"""What the profile endpoints answer: a member's recommendation with its reason."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class Recommendation(BaseModel):
    """The product to offer a member next, and why, as of their last profile refresh."""

    member_id: int
    as_of: date = Field(description="Day of the profile refresh that chose it.")
    sku: str
    product: str = Field(description="The product's name, as {recommended_product} shows it.")
    category: str | None = Field(description="Its category, as {recommended_category} shows it.")
    basis: Literal["product", "category"] = Field(
        description="Whether a product or a category of the member's led to it."
    )
    because: str = Field(description="The product or category it is bought with.")
    confidence: float = Field(description="Share of the buyers of `because` who buy it too.")
    lift: float = Field(description="How much likelier it is among them than among all.")
    reason_zh: str
    reason_en: str
