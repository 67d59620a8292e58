"""Table of health breaches: a rate past its threshold for a campaign, provider or day,
kept so that each breach is logged and posted once."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings import clock
from tidings.db import Base, UtcDateTime


class HealthBreach(Base):
    """One rate past its threshold: scope (campaign, provider or day), its key and day."""

    __tablename__ = "health_breaches"
    __table_args__ = (UniqueConstraint("scope", "scope_key", "day", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    scope_key: Mapped[str] = mapped_column(String(100))
    day: Mapped[date] = mapped_column(Date)
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
