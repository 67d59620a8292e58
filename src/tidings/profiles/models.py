"""Tables of per-member profiles (recomputed in bulk), operator-defined tag rules, and the
fits of the purchase models that refreshes predict with."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


class Profile(Base):
    """What tidings knows of one member as of the last refresh. One row per member."""

    __tablename__ = "profiles"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    as_of: Mapped[date] = mapped_column(Date)
    first_order_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_order_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    days_since_last_order: Mapped[int | None] = mapped_column(Integer)
    orders_total: Mapped[int] = mapped_column(Integer, default=0)
    spend_total_cents: Mapped[int] = mapped_column(Integer, default=0)
    orders_90d: Mapped[int] = mapped_column(Integer, default=0)
    spend_90d_cents: Mapped[int] = mapped_column(Integer, default=0)
    orders_365d: Mapped[int] = mapped_column(Integer, default=0)
    spend_365d_cents: Mapped[int] = mapped_column(Integer, default=0)
    avg_order_cents: Mapped[int | None] = mapped_column(Integer)
    r_score: Mapped[int | None] = mapped_column(Integer)
    f_score: Mapped[int | None] = mapped_column(Integer)
    m_score: Mapped[int | None] = mapped_column(Integer)
    rfm_segment: Mapped[str | None] = mapped_column(String(32))
    value_group: Mapped[str | None] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(16))
    previous_tier: Mapped[str | None] = mapped_column(String(16))
    tier_changed_at: Mapped[date | None] = mapped_column(Date)
    lifecycle_stage: Mapped[str] = mapped_column(String(16))
    top_category: Mapped[str | None] = mapped_column(String(100))
    top_categories: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    discount_share: Mapped[float | None] = mapped_column(Float)
    main_store_id: Mapped[int | None] = mapped_column(Integer)
    main_store_share: Mapped[float | None] = mapped_column(Float)
    best_hour: Mapped[int | None] = mapped_column(Integer)
    next_run_out_on: Mapped[date | None] = mapped_column(Date)
    replenishment: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    p_alive: Mapped[float | None] = mapped_column(Float)
    expected_orders_90d: Mapped[float | None] = mapped_column(Float)
    expected_aov_cents: Mapped[int | None] = mapped_column(Integer)
    clv_12m_cents: Mapped[int | None] = mapped_column(Integer)
    churn_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    # What to offer next and why (tidings.profiles.copurchase): bought with `because`, a
    # product or a category as `basis` says, by `confidence` of the members who buy it.
    recommended_sku: Mapped[str | None] = mapped_column(String(64))
    recommended_product: Mapped[str | None] = mapped_column(String(200))
    recommended_category: Mapped[str | None] = mapped_column(String(100))
    recommendation_basis: Mapped[str | None] = mapped_column(String(16))
    recommendation_because: Mapped[str | None] = mapped_column(String(200))
    recommendation_confidence: Mapped[float | None] = mapped_column(Float)
    recommendation_lift: Mapped[float | None] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class TagRule(Base):
    """An operator's tag, written in the segment language; each edit is a new version."""

    __tablename__ = "tag_rules"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    rule: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class ModelFit(Base):
    """One fit of BG/NBD and Gamma-Gamma; a refresh predicts with the latest one.

    BG/NBD time is in weeks; Gamma-Gamma's spend (and so `v`) is in yuan.
    """

    __tablename__ = "model_fits"

    id: Mapped[int] = mapped_column(primary_key=True)
    calibration_end: Mapped[date] = mapped_column(Date)
    members: Mapped[int] = mapped_column(Integer)
    r: Mapped[float] = mapped_column(Float)
    alpha: Mapped[float] = mapped_column(Float)
    a: Mapped[float] = mapped_column(Float)
    b: Mapped[float] = mapped_column(Float)
    bgnbd_log_likelihood: Mapped[float] = mapped_column(Float)
    gamma_gamma_members: Mapped[int] = mapped_column(Integer, default=0)
    p: Mapped[float | None] = mapped_column(Float)
    q: Mapped[float | None] = mapped_column(Float)
    v: Mapped[float | None] = mapped_column(Float)
    gamma_gamma_log_likelihood: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
