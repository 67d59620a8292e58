"""Fixtures of the segment tests: a small audience with known answers, in memory and in a store.

Today is frozen at 2025-01-31 (Asia/Shanghai). The members:

1 王小明  上海 gold    last order 2025-01-31 01:00 local, tags vip + 榴莲爱好者, consent yes
2 李四    北京 silver  last order 2024-10-23, churn risk, consent withdrawn
3 (none)  no store, no profile (lifecycle never), tag 员工
4 张三    上海 bronze  last order 2025-01-01 00:30 local (2024-12-31 in UTC), 199.90 yuan
5 赵六    北京 no profile tier, imported tier bronze
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from sqlalchemy import Engine, insert

from tidings.members.models import ConsentEvent, Member, Store
from tidings.orders.models import Order, OrderItem
from tidings.profiles.models import Profile
from tidings.segments import audience, snapshot

TODAY = date(2025, 1, 31)
NOW = datetime(2025, 1, 31, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai

STORES = [
    {"id": 1, "code": "SH01", "name": "徐汇店", "city": "上海", "type": "社区店"},
    {"id": 2, "code": "BJ01", "name": "朝阳店", "city": "北京", "type": "商场店"},
]
MEMBERS = [
    {
        "id": 1,
        "code": "M1",
        "phone": "+8613800000001",
        "name": "王小明",
        "gender": "M",
        "birthday": date(1990, 5, 1),
        "store_id": 1,
        "points": 100,
        "tier": None,
        "tags": ["vip"],
    },
    {
        "id": 2,
        "code": "M2",
        "phone": "+8613800000002",
        "name": "李四",
        "gender": "F",
        "birthday": date(1985, 1, 31),
        "store_id": 2,
        "points": 0,
        "tier": None,
        "tags": None,
    },
    {
        "id": 3,
        "code": "M3",
        "phone": None,
        "name": None,
        "gender": None,
        "birthday": None,
        "store_id": None,
        "points": 50,
        "tier": None,
        "tags": ["员工"],
    },
    {
        "id": 4,
        "code": "M4",
        "phone": "+8613800000004",
        "name": "张三",
        "gender": "M",
        "birthday": date(2000, 2, 1),
        "store_id": 1,
        "points": 3000,
        "tier": None,
        "tags": [],
    },
    {
        "id": 5,
        "code": "M5",
        "phone": "+8613800000005",
        "name": "赵六",
        "gender": "F",
        "birthday": None,
        "store_id": 2,
        "points": 10,
        "tier": "bronze",
        "tags": None,
    },
]
PROFILES = [
    {
        "member_id": 1,
        "tier": "gold",
        "days_since_last_order": 0,
        "orders_90d": 4,
        "spend_90d_cents": 60_000,
        "rfm_segment": "Champions",
        "lifecycle_stage": "active",
        "last_order_at": datetime(2025, 1, 30, 17, 0, tzinfo=UTC),
        "p_alive": 0.9,
        "churn_risk": False,
        "next_run_out_on": date(2025, 2, 3),
        "tags": ["榴莲爱好者"],
        "main_store_id": 1,
    },
    {
        "member_id": 2,
        "tier": "silver",
        "days_since_last_order": 100,
        "orders_90d": 0,
        "spend_90d_cents": 0,
        "rfm_segment": "At risk",
        "lifecycle_stage": "dormant",
        "last_order_at": datetime(2024, 10, 23, 2, 0, tzinfo=UTC),
        "p_alive": 0.2,
        "churn_risk": True,
        "next_run_out_on": None,
        "tags": None,
        "main_store_id": 2,
    },
    {
        "member_id": 4,
        "tier": "bronze",
        "days_since_last_order": 31,
        "orders_90d": 1,
        "spend_90d_cents": 19_990,
        "rfm_segment": "New",
        "lifecycle_stage": "active",
        "last_order_at": datetime(2024, 12, 31, 16, 30, tzinfo=UTC),
        "p_alive": None,
        "churn_risk": False,
        "next_run_out_on": date(2025, 2, 10),
        "tags": [],
        "main_store_id": 1,
    },
    {
        "member_id": 5,
        "tier": None,
        "days_since_last_order": 10,
        "orders_90d": 2,
        "spend_90d_cents": 5_000,
        "rfm_segment": "Promising",
        "lifecycle_stage": "new",
        "last_order_at": datetime(2025, 1, 21, 3, 0, tzinfo=UTC),
        "p_alive": 0.6,
        "churn_risk": False,
        "next_run_out_on": None,
        "tags": None,
        "main_store_id": 2,
    },
]
CONSENT = [
    {"id": 1, "member_id": 1, "kind": "opt_in", "occurred_at": datetime(2024, 1, 1, tzinfo=UTC)},
    {"id": 2, "member_id": 2, "kind": "opt_in", "occurred_at": datetime(2024, 1, 1, tzinfo=UTC)},
    {"id": 3, "member_id": 2, "kind": "opt_out", "occurred_at": datetime(2024, 6, 1, tzinfo=UTC)},
    {"id": 4, "member_id": 4, "kind": "opt_out", "occurred_at": datetime(2024, 1, 1, tzinfo=UTC)},
    {"id": 5, "member_id": 4, "kind": "opt_in", "occurred_at": datetime(2024, 3, 1, tzinfo=UTC)},
]


def _local(year: int, month: int, day: int, hour: int) -> datetime:
    """A Shanghai wall-clock time, as UTC."""
    return datetime(year, month, day, hour, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


# Order lines: (order id, member, local time, category, cents).
LINES = [
    (100, 1, _local(2025, 1, 31, 2), "水果", 3_000),
    (100, 1, _local(2025, 1, 31, 2), "零食", 1_000),
    (101, 1, _local(2025, 1, 2, 10), "水果", 2_000),  # first day of a 30-day window
    (102, 1, _local(2025, 1, 1, 23), "水果", 5_000),  # just outside it
    (200, 2, _local(2025, 1, 15, 9), "母婴", 60_000),
    (400, 4, _local(2025, 2, 1, 9), "水果", 9_900),  # after today: never counted
]


def members_frame() -> pl.DataFrame:
    return pl.DataFrame(MEMBERS, schema_overrides={"tags": pl.List(pl.String)})


def profiles_frame() -> pl.DataFrame:
    return pl.DataFrame(PROFILES, schema_overrides={"tags": pl.List(pl.String)})


def order_lines_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"member_id": m, "order_id": o, "ordered_at": t, "category": c, "amount_cents": a}
            for o, m, t, c, a in LINES
        ]
    )


@pytest.fixture
def people() -> pl.DataFrame:
    """The audience frame of the five members, as of TODAY."""
    return audience.audience_frame(
        members=members_frame(),
        stores=pl.DataFrame(STORES),
        profiles=profiles_frame(),
        consent=pl.DataFrame(CONSENT),
        today=TODAY,
    )


@pytest.fixture(autouse=True)
def fresh_snapshots() -> Iterator[None]:
    """Each test starts without snapshots left by the previous one (same store URL)."""
    snapshot.invalidate()
    yield
    snapshot.invalidate()


def fill_store(engine: Engine) -> None:
    """Writes the five members, their stores, profiles, consent and orders into a store."""
    with engine.begin() as connection:
        connection.execute(insert(Store), STORES)
        connection.execute(
            insert(Member),
            [{**row, "updated_at": NOW, "created_at": NOW} for row in MEMBERS],
        )
        connection.execute(
            insert(Profile),
            [{**row, "as_of": TODAY, "computed_at": NOW} for row in PROFILES],
        )
        connection.execute(
            insert(ConsentEvent),
            [{**row, "source": "pos", "topic": "marketing"} for row in CONSENT],
        )
        orders = {o: (m, t) for o, m, t, _, _ in LINES}
        connection.execute(
            insert(Order),
            [
                {
                    "id": o,
                    "external_id": f"O{o}",
                    "member_id": m,
                    "ordered_at": t,
                    "amount_cents": sum(a for oo, _, _, _, a in LINES if oo == o),
                }
                for o, (m, t) in orders.items()
            ],
        )
        connection.execute(
            insert(OrderItem),
            [
                {"order_id": o, "line_no": n, "category": c, "amount_cents": a, "quantity": 1}
                for n, (o, _, _, c, a) in enumerate(LINES)
            ],
        )
