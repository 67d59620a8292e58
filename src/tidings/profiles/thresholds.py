"""The numbers profiles are computed with: windows, value groups, tiers, tags, models.

`ProfileThresholds()` holds the defaults the articles and the issue name; a caller overrides
any of them with `dataclasses.replace`, and `from_settings` reads the brand's overrides from
settings named `profile_<field>` (for example TIDINGS_PROFILE_GOLD_MIN_CENTS) when present.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


class ProfileSettingsError(ValueError):
    """A profile threshold is set to a value that cannot work."""


@dataclass(frozen=True)
class ProfileThresholds:
    """Every threshold of a profile refresh. Money in cents (分), windows in days."""

    # RFM windows: orders_90d/spend_90d and orders_365d/spend_365d hold these windows.
    short_window_days: int = 90
    long_window_days: int = 365
    # Value groups (价值型, 潜力型, 沉睡型), as the articles define them.
    valuable_window_days: int = 90
    valuable_min_orders: int = 3
    valuable_min_avg_cents: int = 50_000
    potential_window_days: int = 180
    potential_min_orders: int = 2
    potential_min_avg_cents: int = 30_000
    potential_max_avg_cents: int = 50_000  # exclusive: 500 yuan and up is 价值型 territory
    sleeping_after_days: int = 365
    # Tiers by spend over the trailing quarter.
    tier_window_days: int = 90
    silver_min_cents: int = 100_000
    gold_min_cents: int = 500_000
    tier_from_pos: bool = False  # True: members.tier from the POS wins when it names a tier
    # Lifecycle stages.
    new_within_days: int = 30
    dormant_after_days: int = 30
    lapsed_after_days: int = 365
    # Preferences.
    top_categories: int = 3
    # Best hour to send: pseudo-counts (in orders) of the store's and the base's pattern.
    member_pseudo_orders: float = 4.0
    store_pseudo_orders: float = 50.0
    fallback_send_hour: int = 10
    # Replenishment.
    cadence_min_purchases: int = 3
    replenish_forget_after_days: int = 60
    replenish_items: int = 10
    # Purchase models.
    churn_below_p_alive: float = 0.5
    model_refit_after_days: int = 7
    # Computed tags.
    price_sensitive_share: float = 0.5
    price_sensitive_min_lines: int = 3
    fan_min_share: float = 0.5
    fan_min_orders: int = 3
    restock_within_days: int = 7
    # Recommendations (tidings.profiles.copurchase).
    recommend_min_pair_members: int = 20
    recommend_min_confidence: float = 0.05
    recommend_min_lift: float = 1.5
    recommend_per_item: int = 10
    recommend_sample_members: int = 50_000
    recommend_regular_purchases: int = 2

    def __post_init__(self) -> None:
        if self.silver_min_cents > self.gold_min_cents:
            raise ProfileSettingsError(
                f"silver starts at {self.silver_min_cents} cents, above gold's"
                f" {self.gold_min_cents}; silver must start at or below gold"
            )
        if self.potential_min_avg_cents > self.potential_max_avg_cents:
            raise ProfileSettingsError(
                "potential_min_avg_cents must not exceed potential_max_avg_cents"
            )
        if not 0 <= self.fallback_send_hour <= 23:
            raise ProfileSettingsError("fallback_send_hour must be an hour from 0 to 23")


def from_settings(settings: Any) -> ProfileThresholds:
    """The defaults, overridden by any `profile_<field>` attribute `settings` carries."""
    overrides = {}
    for field in dataclasses.fields(ProfileThresholds):
        value = getattr(settings, f"profile_{field.name}", None)
        if value is not None:
            overrides[field.name] = value
    return ProfileThresholds(**overrides)
