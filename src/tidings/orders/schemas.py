"""Shapes of order data in and out of the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OrderLineIn(BaseModel):
    """One order line as an integrator sends it; lines with the same order_id are one order."""

    model_config = ConfigDict(extra="forbid")

    order_id: str | int | None = Field(None, examples=["SO20240501001"])
    ordered_at: str | None = Field(None, examples=["2024-05-01 10:00:00", "2024-05-01T02:00:00Z"])
    amount: str | float | int | None = Field(None, description="Yuan, e.g. '12.50'.")
    phone: str | int | None = None
    member_code: str | int | None = None
    store_code: str | None = None
    sku: str | None = None
    category: str | None = None
    quantity: int | str | None = None
    discount: bool | str | float | None = Field(None, description="yes/no or yuan off.")


class OrdersBatch(BaseModel):
    """A batch of order lines to import."""

    orders: list[OrderLineIn]
    create_members: bool = Field(False, description="Create members the store does not know.")
