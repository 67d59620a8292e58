"""Profiles computed from small hand-made histories, at the boundaries a marketer would notice."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from tidings.profiles.compute import PurchaseModels, compute_profiles
from tidings.profiles.sendtime import SendWindowError, allowed_hours
from tidings.profiles.thresholds import ProfileSettingsError, ProfileThresholds

AS_OF = date(2025, 6, 30)
ZONE = "Asia/Shanghai"
UTC_TIME = pl.Datetime("us", "UTC")


def at(days_ago: int, hour: int = 12) -> datetime:
    """A UTC time `days_ago` local days before the as-of day, at a Shanghai hour."""
    local = datetime(AS_OF.year, AS_OF.month, AS_OF.day, hour) - timedelta(days=days_ago)
    return (local - timedelta(hours=8)).replace(tzinfo=UTC)


class History:
    """Members and their orders, written the way a test reads them."""

    def __init__(self) -> None:
        self.members: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []

    def member(self, member_id: int, **values: Any) -> None:
        row = {"member_id": member_id, "store_id": 1, "tier": None, "timezone": None, "tags": None}
        self.members.append(row | values)

    def order(
        self,
        member_id: int,
        days_ago: int,
        cents: int,
        *,
        hour: int = 12,
        store_id: int = 1,
        category: str = "水果",
        sku: str = "F1",
        quantity: int = 1,
        discounted: bool = False,
    ) -> None:
        order_id = len(self.orders) + 1
        when = at(days_ago, hour)
        self.orders.append(
            {
                "order_id": order_id,
                "member_id": member_id,
                "store_id": store_id,
                "ordered_at": when,
                "amount_cents": cents,
                "discount_cents": 0,
            }
        )
        self.lines.append(
            {
                "member_id": member_id,
                "order_id": order_id,
                "ordered_at": when,
                "store_id": store_id,
                "amount_cents": cents,
                "quantity": quantity,
                "category": category,
                "sku": sku,
                "discounted": discounted,
            }
        )

    def profiles(
        self,
        *,
        thresholds: ProfileThresholds | None = None,
        previous: pl.DataFrame | None = None,
        products: pl.DataFrame | None = None,
        send_window: str = "08:00-20:00",
    ) -> pl.DataFrame:
        members = pl.DataFrame(
            self.members,
            schema={
                "member_id": pl.Int64,
                "store_id": pl.Int64,
                "tier": pl.String,
                "timezone": pl.String,
                "tags": pl.List(pl.String),
            },
        )
        orders = pl.DataFrame(
            self.orders,
            schema={
                "order_id": pl.Int64,
                "member_id": pl.Int64,
                "store_id": pl.Int64,
                "ordered_at": UTC_TIME,
                "amount_cents": pl.Int64,
                "discount_cents": pl.Int64,
            },
        )
        lines = pl.DataFrame(
            self.lines,
            schema={
                "member_id": pl.Int64,
                "order_id": pl.Int64,
                "ordered_at": UTC_TIME,
                "store_id": pl.Int64,
                "amount_cents": pl.Int64,
                "quantity": pl.Int64,
                "category": pl.String,
                "sku": pl.String,
                "discounted": pl.Boolean,
            },
        )
        if previous is None:
            previous = pl.DataFrame(
                schema={
                    "member_id": pl.Int64,
                    "tier": pl.String,
                    "previous_tier": pl.String,
                    "tier_changed_at": pl.Date,
                }
            )
        if products is None:
            products = pl.DataFrame(
                schema={"sku": pl.String, "category": pl.String, "pack_size_days": pl.Int64}
            )
        return compute_profiles(
            members=members,
            orders=orders,
            lines=lines,
            products=products,
            previous=previous,
            models=PurchaseModels(),
            as_of=AS_OF,
            thresholds=thresholds or ProfileThresholds(),
            timezone=ZONE,
            send_window=send_window,
        )


def by_member(profiles: pl.DataFrame) -> dict[int, dict[str, Any]]:
    return {row["member_id"]: row for row in profiles.to_dicts()}


def test_lifecycle_stages_at_their_boundaries() -> None:
    history = History()
    cases = {1: [30], 2: [31], 3: [100, 29], 4: [100, 30], 5: [400, 364], 6: [400, 365]}
    for member_id, days in cases.items():
        history.member(member_id)
        for days_ago in days:
            history.order(member_id, days_ago, 1000)
    history.member(7)
    stages = {k: v["lifecycle_stage"] for k, v in by_member(history.profiles()).items()}
    assert stages == {
        1: "new",  # first order exactly 30 days ago
        2: "dormant",  # first and only order 31 days ago
        3: "active",
        4: "dormant",  # no order in the last 30 days
        5: "dormant",
        6: "lapsed",  # no order in the last 365 days
        7: "never",
    }


def test_value_groups_at_the_500_and_300_yuan_lines() -> None:
    history = History()
    for member_id, cents in ((1, 49_999), (2, 50_000)):
        history.member(member_id)
        for days_ago in (1, 30, 89):
            history.order(member_id, days_ago, cents)
    history.member(3)  # two orders in half a year, 300 yuan on average: 潜力型
    history.order(3, 10, 20_000)
    history.order(3, 170, 40_000)
    history.member(4)  # two orders averaging 299.99 yuan: no group
    history.order(4, 10, 29_999)
    history.order(4, 170, 29_999)
    history.member(5)  # last order over a year ago: 沉睡型
    history.order(5, 365, 90_000)
    history.member(6)
    groups = {k: v["value_group"] for k, v in by_member(history.profiles()).items()}
    assert groups == {1: "潜力型", 2: "价值型", 3: "潜力型", 4: None, 5: "沉睡型", 6: None}


def test_windows_count_the_last_n_calendar_days() -> None:
    history = History()
    history.member(1)
    for days_ago in (0, 89, 90, 364, 365):
        history.order(1, days_ago, 100)
    row = by_member(history.profiles())[1]
    assert (row["orders_90d"], row["orders_365d"], row["orders_total"]) == (2, 4, 5)
    assert (row["spend_90d_cents"], row["spend_total_cents"]) == (200, 500)
    assert row["days_since_last_order"] == 0


def test_tied_members_share_a_score_whatever_their_order() -> None:
    def scores(seed: int) -> dict[int, tuple[int, int, int]]:
        history = History()
        ids = list(range(1, 11))
        random.Random(seed).shuffle(ids)
        for member_id in ids:
            history.member(member_id)
            # Members 1-6 bought once 10 days ago; 7-10 more often, more recently.
            if member_id <= 6:
                history.order(member_id, 10, 1000)
            else:
                for days_ago in range(member_id - 6):
                    history.order(member_id, days_ago, 1000 * member_id)
        return {
            k: (v["r_score"], v["f_score"], v["m_score"])
            for k, v in by_member(history.profiles()).items()
        }

    first = scores(1)
    assert first == scores(2)
    assert len({first[k] for k in range(1, 7)}) == 1  # equal histories, equal scores
    # Six of ten tied at the bottom take ranks 1-6, average 3.5: ceil(5 * 3.5 / 10) = 2.
    assert first[1] == (2, 2, 2)
    assert first[10] == (5, 5, 5)


def test_a_member_with_one_order_and_one_with_none() -> None:
    history = History()
    history.member(1)
    history.order(1, 5, 12_300)
    history.member(2, tags=["手工标签"])
    rows = by_member(history.profiles())
    one, none = rows[1], rows[2]
    assert one["orders_total"] == 1 and one["avg_order_cents"] == 12_300
    assert one["rfm_segment"] == "Champions"  # alone, the best of the base on every score
    assert "新客" in one["tags"]
    assert none["orders_total"] == 0 and none["days_since_last_order"] is None
    assert none["rfm_segment"] is None and none["r_score"] is None
    assert none["tier"] == "bronze" and none["lifecycle_stage"] == "never"
    assert none["tags"] == ["手工标签"]
    assert 8 <= none["best_hour"] <= 19


def test_rfm_segments_follow_the_grid() -> None:
    history = History()
    # Ten members, member k bought k times, the last one k days ago: recency and value
    # run opposite ways, so the best spenders are the ones slipping away.
    for k in range(1, 11):
        history.member(k)
        for n in range(k):
            history.order(k, k * 40 + n, 10_000)
    segments = {k: v["rfm_segment"] for k, v in by_member(history.profiles()).items()}
    assert segments[1] == "New"  # most recent, fewest orders
    assert segments[10] == "Cannot lose"  # longest gone, most orders and spend
    assert segments[9] == "Cannot lose"
    assert segments[5] == "About to sleep" or segments[5] == "Need attention"


def test_tiers_and_the_tier_they_replace() -> None:
    history = History()
    for member_id, cents in ((1, 99_999), (2, 100_000), (3, 500_000), (4, 600_000)):
        history.member(member_id)
        history.order(member_id, 89, cents)
    history.order(4, 90, 10_000_000)  # outside the quarter: does not count
    previous = pl.DataFrame(
        {
            "member_id": [2, 3],
            "tier": ["bronze", "gold"],
            "previous_tier": [None, "silver"],
            "tier_changed_at": [date(2025, 1, 1), date(2025, 2, 1)],
        }
    )
    rows = by_member(history.profiles(previous=previous))
    assert [rows[k]["tier"] for k in (1, 2, 3, 4)] == ["bronze", "silver", "gold", "gold"]
    assert (rows[2]["previous_tier"], rows[2]["tier_changed_at"]) == ("bronze", AS_OF)
    assert (rows[3]["previous_tier"], rows[3]["tier_changed_at"]) == ("silver", date(2025, 2, 1))
    assert rows[1]["previous_tier"] is None and rows[1]["tier_changed_at"] is None
    custom = replace(ProfileThresholds(), silver_min_cents=50_000, gold_min_cents=90_000)
    assert by_member(history.profiles(thresholds=custom))[1]["tier"] == "gold"


def test_pos_tier_wins_only_when_the_brand_says_so() -> None:
    history = History()
    history.member(1, tier="Gold")
    history.order(1, 1, 100)
    assert by_member(history.profiles())[1]["tier"] == "bronze"
    pos = replace(ProfileThresholds(), tier_from_pos=True)
    assert by_member(history.profiles(thresholds=pos))[1]["tier"] == "gold"


def test_preferences_categories_discounts_and_main_store() -> None:
    history = History()
    history.member(1)
    history.order(1, 1, 6_000, category="榴莲", store_id=2, discounted=True)
    history.order(1, 2, 3_000, category="苹果", store_id=2, discounted=True)
    history.order(1, 3, 1_000, category="香蕉", store_id=3)
    history.order(1, 4, 0, category="袋子", store_id=3)
    row = by_member(history.profiles())[1]
    assert row["top_categories"] == [
        {"category": "榴莲", "share": 0.6},
        {"category": "苹果", "share": 0.3},
        {"category": "香蕉", "share": 0.1},
    ]
    assert row["top_category"] == "榴莲"
    assert row["discount_share"] == 0.5
    assert (row["main_store_id"], row["main_store_share"]) == (2, 0.5)  # tie: lowest id
    assert "榴莲爱好者" in row["tags"] and "价格敏感" in row["tags"]


def test_best_hour_follows_a_regular_and_stays_in_the_window() -> None:
    history = History()
    history.member(1)
    for days_ago in range(12):
        history.order(1, days_ago, 100, hour=21)  # always buys at nine in the evening
    history.member(2)
    history.order(2, 3, 100, hour=10)  # one order: leans on the store's pattern
    for other in range(3, 23):
        history.member(other)
        history.order(other, 5, 100, hour=15)
    rows = by_member(history.profiles())
    assert rows[1]["best_hour"] == 19  # the window's last hour, nearest to nine at night
    assert rows[2]["best_hour"] == 15
    narrow = by_member(history.profiles(send_window="09:00-12:00"))
    assert all(9 <= row["best_hour"] <= 11 for row in narrow.values())


def test_member_timezones_move_the_best_hour() -> None:
    history = History()
    history.member(1, timezone="Europe/London")
    for days_ago in range(10):
        history.order(1, days_ago, 100, hour=18)  # 18:00 in Shanghai is 11:00 in London
    assert by_member(history.profiles())[1]["best_hour"] == 11


def test_send_windows_are_checked() -> None:
    assert allowed_hours("08:00-20:00") == list(range(8, 20))
    assert allowed_hours("20:00-02:00") == [20, 21, 22, 23, 0, 1]
    with pytest.raises(SendWindowError, match="HH:MM-HH:MM"):
        allowed_hours("8 to 8")


def test_replenishment_by_pack_size_and_by_learned_cadence() -> None:
    history = History()
    history.member(1)
    history.order(1, 10, 5_000, sku="DIAPER", category="母婴", quantity=2)
    for member_id in (2, 3):
        history.member(member_id)
        for days_ago in (60, 40, 20):
            history.order(member_id, days_ago, 3_000, sku="MILK", category="母婴")
    history.member(4)
    history.order(4, 200, 3_000, sku="MILK", category="母婴")  # ran out long ago: forgotten
    history.order(4, 1, 9_000, sku="TV", category="数码")  # bought once by all: no cadence
    products = pl.DataFrame(
        {
            "sku": ["DIAPER", "MILK", "TV"],
            "category": ["母婴"] * 2 + ["数码"],
            "pack_size_days": [15, None, None],
        }
    )
    rows = by_member(history.profiles(products=products))
    assert rows[1]["replenishment"] == [
        {"sku": "DIAPER", "category": "母婴", "run_out_on": AS_OF + timedelta(days=20)}
    ]
    assert rows[2]["next_run_out_on"] == AS_OF  # bought 20 days ago, every 20 days
    assert "待补货" in rows[2]["tags"]
    assert rows[4]["replenishment"] is None and rows[4]["next_run_out_on"] is None


def test_thresholds_that_cannot_work_are_refused() -> None:
    with pytest.raises(ProfileSettingsError, match="silver"):
        ProfileThresholds(silver_min_cents=900_000, gold_min_cents=500_000)


def test_orders_after_the_as_of_day_are_ignored() -> None:
    history = History()
    history.member(1)
    history.order(1, 5, 100)
    history.order(1, -1, 999)  # tomorrow
    row = by_member(history.profiles())[1]
    assert row["orders_total"] == 1 and row["spend_total_cents"] == 100


def test_purchase_days_are_the_same_whatever_the_span_of_member_ids() -> None:
    """Close member ids sort on one packed integer; ids too far apart for it take the
    two-key sort. Both give each member's purchase days of each sku, in order."""
    from tidings.profiles.replenish import purchase_days

    rng = random.Random(5)
    lines = pl.DataFrame(
        {
            "member_id": [rng.randint(1, 40) for _ in range(600)],
            "sku": [rng.choice(["A", "B", "C", None]) for _ in range(600)],
            "day": [AS_OF - timedelta(days=rng.randint(0, 90)) for _ in range(600)],
            "quantity": [rng.randint(1, 3) for _ in range(600)],
        }
    ).with_columns(
        pl.col("sku").cast(pl.Categorical), category=pl.col("sku").cast(pl.String) + "类"
    )
    far = 1 << 60  # with it, the member ids span more than 63 bits with the skus and days
    packed = purchase_days(lines)
    wide = purchase_days(lines.with_columns(pl.col("member_id") + far * (pl.col("member_id") % 2)))
    restored = wide.with_columns(pl.col("member_id") % far)
    by_member = ["member_id", "sku", "day"]
    assert packed.height == lines.drop_nulls("sku").unique(by_member).height
    assert packed.drop("run").sort(by_member).equals(restored.drop("run").sort(by_member))
    # Days ascend within a member's sku, and `run` numbers each (member, sku) once.
    assert packed.equals(packed.sort("member_id", pl.col("sku").to_physical(), "day"))
    runs = packed.group_by("run").agg(pl.col("member_id", "sku").n_unique())
    assert runs["member_id"].max() == 1 and runs["sku"].max() == 1
    assert packed["run"].n_unique() == packed.select("member_id", "sku").unique().height
    assert packed["quantity"].sum() == lines.drop_nulls("sku")["quantity"].sum()


def test_line_preferences_are_the_same_whatever_the_span_of_member_ids() -> None:
    """Close member ids group on one packed integer with the category; ids too far apart
    for it sort on the two. Both give each member's categories, discounts and line count."""
    from tidings.profiles.preferences import line_preferences

    rng = random.Random(7)
    lines = pl.DataFrame(
        {
            "member_id": [rng.randint(1, 40) for _ in range(600)],
            "category": [rng.choice(["水果", "乳品", "母婴", None]) for _ in range(600)],
            "amount_cents": [rng.choice([-500, 0, 100, 2_000, 2_000]) for _ in range(600)],
            "discounted": [rng.random() < 0.3 for _ in range(600)],
        }
    ).with_columns(pl.col("category").cast(pl.Categorical))
    far = 1 << 62  # member ids then span 63 bits: no room for the category
    packed = line_preferences(lines, top=2)
    apart = pl.col("member_id") + far * (pl.col("member_id") % 2)
    wide = line_preferences(lines.with_columns(apart), top=2)
    for near, far_apart in zip(packed, wide, strict=True):
        restored = far_apart.with_columns(pl.col("member_id") % far).sort("member_id")
        assert near.equals(restored)
    favourites, discounts = packed
    assert favourites["member_id"].is_sorted() and discounts["member_id"].is_sorted()
    assert discounts["lines"].sum() == 600
    one = lines.filter(pl.col("member_id") == 1)
    row = discounts.filter(pl.col("member_id") == 1).row(0, named=True)
    assert row["discount_share"] == pytest.approx(one["discounted"].mean())
    spend = (
        one.drop_nulls("category")
        .group_by(pl.col("category").cast(pl.String))
        .agg(pl.col("amount_cents").clip(0, None).sum())
        .sort(["amount_cents", "category"], descending=[True, False])
    )
    top = favourites.filter(pl.col("member_id") == 1)["top_categories"].to_list()[0]
    assert [item["category"] for item in top] == spend["category"].head(2).to_list()
