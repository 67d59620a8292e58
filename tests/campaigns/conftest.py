"""Fixtures of the campaign tests: a base of members written in bulk, a quick simulator.

Members get the timezone where it is now about midday (an `Etc/GMT` zone), so that marketing
may go at once whatever hour the tests run, inside the default 08:00-20:00 window.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, text

from tidings import clock
from tidings.bulk import bulk_insert
from tidings.config import Settings, get_settings
from tidings.db import session_scope
from tidings.segments.snapshot import invalidate

UTC_TIME = pl.Datetime("us", "UTC")


def midday_zone(at: datetime | None = None) -> str:
    """An IANA zone whose local time is between 11:00 and 13:00 at `at` (default: now)."""
    hour = (at or clock.now()).astimezone(UTC).hour
    offset = 12 - hour  # hours east of UTC
    if offset > 12:
        offset -= 24
    if offset < -12:
        offset += 24
    # POSIX-style names: Etc/GMT-8 is eight hours *east* of UTC.
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def add_members(
    engine: Engine,
    count: int,
    *,
    consent_every: int = 1,
    timezone: str | None = None,
    best_hour: int | None = 10,
    first_id: int = 1,
    tier: str = "silver",
) -> list[int]:
    """Writes `count` members with stores, profiles and (for every `consent_every`-th one) an
    opt-in; returns their ids."""
    now = clock.now()
    ids = list(range(first_id, first_id + count))
    stores = pl.DataFrame(
        {"id": [1], "code": ["SH01"], "name": ["徐汇店"], "city": ["上海"], "type": ["社区店"]}
    ).with_columns(created_at=pl.lit(now, dtype=UTC_TIME))
    members = pl.DataFrame(
        {
            "id": ids,
            "code": [f"M{i}" for i in ids],
            "phone": [f"+86139{i:08d}" for i in ids],
            "phone_status": ["ok"] * count,
            "name": [["王小明", "李芳", "张伟"][i % 3] for i in ids],
            "gender": [["M", "F", "M"][i % 3] for i in ids],
            "store_id": [1] * count,
            "points": [i * 10 for i in ids],
            "timezone": [timezone] * count,
        },
        schema_overrides={"timezone": pl.String},
    ).with_columns(
        birthday_is_lunar=pl.lit(False),
        created_at=pl.lit(now, dtype=UTC_TIME),
        updated_at=pl.lit(now, dtype=UTC_TIME),
    )
    consent = pl.DataFrame({"member_id": ids[::consent_every]}).with_columns(
        kind=pl.lit("opt_in"),
        topic=pl.lit("marketing"),
        source=pl.lit("test"),
        occurred_at=pl.lit(now, dtype=UTC_TIME),
        created_at=pl.lit(now, dtype=UTC_TIME),
    )
    profiles = pl.DataFrame({"member_id": ids}).with_columns(
        as_of=pl.lit(date(2025, 1, 1)),
        tier=pl.lit(tier),
        lifecycle_stage=pl.lit("dormant"),
        best_hour=pl.lit(best_hour, dtype=pl.Int32),
        orders_total=pl.lit(1),
        spend_total_cents=pl.lit(10_000),
        orders_90d=pl.lit(0),
        spend_90d_cents=pl.lit(0),
        orders_365d=pl.lit(1),
        spend_365d_cents=pl.lit(10_000),
        churn_risk=pl.lit(False),
        computed_at=pl.lit(now, dtype=UTC_TIME),
    )
    with session_scope(engine) as session:
        if session.execute(text("SELECT COUNT(*) FROM stores")).scalar_one() == 0:
            bulk_insert(session, "stores", stores)
        bulk_insert(session, "members", members)
        bulk_insert(session, "consent_events", consent)
        bulk_insert(session, "profiles", profiles)
    return ids


def message_rows(engine: Engine, campaign_id: int) -> pl.DataFrame:
    """A campaign's messages as a frame (member, variant name, state, reason, stage, text)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT m.member_id, v.name, m.state, m.skip_reason, m.rollout_stage, m.text,"
                " m.send_at FROM messages m LEFT JOIN variants v ON v.id = m.variant_id"
                " WHERE m.campaign_id = :id ORDER BY m.member_id"
            ),
            {"id": campaign_id},
        ).all()
    schema = ["member_id", "variant", "state", "skip_reason", "rollout_stage", "text", "send_at"]
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def inbox_phones(path: Path) -> Counter[str]:
    """How many messages each simulated handset received."""
    if not path.exists():
        return Counter()
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return Counter(str(line["phone"]) for line in lines)


@pytest.fixture
def quick_simulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Makes the simulator deliver everything within a few milliseconds; returns its inbox."""
    inbox = tmp_path / "inbox.jsonl"
    values = {
        "TIDINGS_SIMULATOR_INBOX": str(inbox),
        "TIDINGS_SIMULATOR_RECEIPT_DELAY": "0-0.02",
        "TIDINGS_SIMULATOR_FAILURE_RATE": "0",
        "TIDINGS_SIMULATOR_DELIVERY_RATE": "1.0",
        "TIDINGS_SIMULATOR_REPLY_RATE": "0",
        "TIDINGS_DISPATCH_RECEIPT_TIMEOUT": "2",
        "TIDINGS_DISPATCH_LEASE_SECONDS": "5",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return inbox


def settings_now() -> Settings:
    """The settings as the environment gives them now."""
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(autouse=True)
def fresh_snapshots() -> None:
    """Each test writes a new base: forget the audience kept in memory by an earlier one."""
    invalidate()
