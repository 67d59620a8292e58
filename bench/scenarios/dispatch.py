"""Dispatch to the simulator: sustained send rate, a configured rate held, two workers, no
duplicate. Figures taken on a shared 2-core machine are noisy; read them as a floor."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from sqlalchemy import Engine, text

from bench.harness import report
from tidings import clock, migrate
from tidings.bulk import bulk_insert
from tidings.campaigns.models import Campaign, CampaignStatus
from tidings.config import Settings
from tidings.db import make_engine, session_scope
from tidings.dispatch.worker import Worker

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SEND_MESSAGES = 200_000
LIMITED_MESSAGES = 20_000
LIMITED_RATE = 2_000  # messages per second
TWO_WORKER_MESSAGES = 50_000


def queue_campaign(engine: Engine, count: int, *, provider: str = "simulator") -> None:
    """A running campaign with `count` queued messages through `provider`, written in bulk."""
    with session_scope(engine) as session:
        campaign = Campaign(name="bench", status=CampaignStatus.RUNNING)
        session.add(campaign)
        session.flush()
        now = clock.now()
        frame = pl.DataFrame(
            {
                "dedupe_key": [f"campaign:{campaign.id}:member:{i}" for i in range(count)],
                "campaign_id": [campaign.id] * count,
                "phone": [f"+86{13000000000 + i}" for i in range(count)],
                "kind": ["marketing"] * count,
                "priority": [9] * count,
                "text": ["【tidings】会员日全场8折，点击 t.example.cn/a1 拒收请回复R"] * count,
                "parts": [1] * count,
                "cost_cents": [5] * count,
                "state": ["queued"] * count,
                "rollout_stage": [0] * count,
                "send_at": [now - timedelta(minutes=1)] * count,
                "provider": [provider] * count,
                "attempts": [0] * count,
                "created_at": [now] * count,
                "updated_at": [now] * count,
            }
        )
        bulk_insert(session, "messages", frame)


def _settings(inbox: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "simulator_inbox": inbox,
        "simulator_receipt_delay": "0-1",
        "dispatch_receipt_timeout": 5.0,
        "send_window": "00:00-00:00",
        "quiet_hours": "",
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


def _received(inbox: Path) -> list[tuple[int, datetime]]:
    lines = inbox.read_text().splitlines() if inbox.exists() else []
    records = (json.loads(line) for line in lines)
    return [(r["message_id"], datetime.fromisoformat(r["received_at"])) for r in records]


def _send_rate(engine: Engine, store: str, work: Path) -> None:
    queue_campaign(engine, SEND_MESSAGES)
    inbox = work / f"{store}-send.jsonl"
    asyncio.run(Worker(engine, settings=_settings(inbox), concurrency=2).run(once=True))
    received = _received(inbox)
    times = [at for _, at in received]
    span = (max(times) - min(times)).total_seconds()
    rate = len(received) / span if span else 0.0
    report(
        f"dispatch send rate, one worker, {store}",
        rate,
        "messages/s",
        "≥ 10,000",
        met=rate >= 10_000,
    )


def _limited_rate(engine: Engine, work: Path) -> None:
    queue_campaign(engine, LIMITED_MESSAGES)
    inbox = work / "limited.jsonl"
    settings = _settings(inbox, simulator_rate_per_second=LIMITED_RATE)
    asyncio.run(Worker(engine, settings=settings, concurrency=4).run(once=True))
    times = sorted(at.timestamp() for _, at in _received(inbox))
    whole_seconds = int(times[-1] - times[0])
    sent = sum(1 for t in times if t < times[0] + whole_seconds)
    achieved = sent / whole_seconds
    busiest, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    met = LIMITED_RATE * 0.98 <= achieved <= LIMITED_RATE and busiest <= LIMITED_RATE
    report(
        f"dispatch at a configured {LIMITED_RATE:,}/s, sqlite",
        achieved,
        "messages/s",
        f"within 2% of {LIMITED_RATE:,}, never above (busiest second: {busiest:,})",
        met=met,
    )


def _two_workers(engine: Engine, work: Path) -> None:
    queue_campaign(engine, TWO_WORKER_MESSAGES)
    inbox = work / "two.jsonl"
    url = engine.url.render_as_string(hide_password=False)

    def work_once() -> None:
        own = make_engine(url)
        asyncio.run(Worker(own, settings=_settings(inbox), concurrency=2).run(once=True))
        own.dispose()

    threads = [threading.Thread(target=work_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(message_id for message_id, _ in _received(inbox))
    duplicates = sum(n - 1 for n in counts.values())
    # Not every message reaches a handset: the simulator refuses a share of numbers for good
    # (failed, 0x0B). The run is complete when every message ended in a final state and the
    # inbox holds exactly the ones the provider took.
    with engine.connect() as connection:
        taken = set(
            connection.execute(
                text("SELECT id FROM messages WHERE provider_message_id IS NOT NULL")
            ).scalars()
        )
        by_state: dict[str, int] = dict(
            connection.execute(text("SELECT state, COUNT(*) FROM messages GROUP BY state")).all()
        )
    settled = sum(by_state.get(state, 0) for state in ("delivered", "failed", "expired"))
    complete = set(counts) == taken and settled == sum(by_state.values())
    report(
        "dispatch two workers, postgresql: duplicates",
        duplicates,
        "messages",
        f"0; all {sum(by_state.values()):,} settled, the taken ones each in the inbox: {complete}"
        f" ({', '.join(f'{state} {n:,}' for state, n in sorted(by_state.items()))})",
        met=duplicates == 0 and complete,
    )


def _postgres(schema: str) -> tuple[Engine, Engine]:
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(POSTGRES_URL, schema=schema)
    migrate.upgrade(engine)
    return admin, engine


def _sqlite(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    return engine


def run() -> None:
    """Measures the dispatcher on SQLite and PostgreSQL."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        _send_rate(_sqlite(work / "send.db"), "sqlite", work)
        _limited_rate(_sqlite(work / "limited.db"), work)
        schema = f"bench_dispatch_{os.getpid()}"
        admin, engine = _postgres(schema)
        try:
            _send_rate(engine, "postgresql", work)
            with engine.begin() as connection:
                connection.execute(text("TRUNCATE messages, delivery_receipts, campaigns CASCADE"))
            _two_workers(engine, work)
        finally:
            engine.dispose()
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()
