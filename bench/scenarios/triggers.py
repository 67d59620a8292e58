"""Cart events turned into queued trigger messages, at 1,000 events a second.

Target (issue 9): p95 <= 1 s from arrival to queued. A real uvicorn server takes
`POST /api/v1/events:batch` requests of 100 cart events, sent on a fixed schedule of 10 a
second (1,000 events/s) from a pool of senders; each request stores its events, resolves
members, and fires the cart-abandoned trigger (two reminders per cart, through consent, caps,
windows, rendering and checks) in the same transaction. An event's latency runs from the
moment its batch was due to be sent (so a server falling behind shows) to the answer, given
after the commit that queued its messages. Setting up members is not timed.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import uvicorn
from sqlalchemy import Engine, text

from bench.harness import report
from tidings import migrate
from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.bulk import bulk_insert
from tidings.db import make_engine, session_scope

SECONDS = int(os.environ.get("BENCH_TRIGGER_SECONDS", "20"))
MEMBERS = 50_000
BATCH = 100  # events per request
RATE = 1000  # events per second
SENDERS = 8  # requests in flight at most
TARGET = 1.0  # seconds, p95 from arrival to queued
POSTGRES_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMA = "bench_triggers"


def _seed(engine: Engine) -> str:
    now = datetime.now(UTC)
    ids = list(range(1, MEMBERS + 1))
    members = pl.DataFrame(
        {
            "id": ids,
            "code": [f"M{i}" for i in ids],
            "phone": [f"+86137{i:08d}" for i in ids],
            "phone_status": ["ok"] * MEMBERS,
            "name": ["王小明"] * MEMBERS,
            "gender": ["M"] * MEMBERS,
            "birthday_is_lunar": [False] * MEMBERS,
            "points": [0] * MEMBERS,
            "created_at": [now] * MEMBERS,
            "updated_at": [now] * MEMBERS,
        }
    )
    consent = pl.DataFrame({"member_id": ids}).with_columns(
        kind=pl.lit("opt_in"),
        topic=pl.lit("marketing"),
        source=pl.lit("bench"),
        occurred_at=pl.lit(now),
        created_at=pl.lit(now),
    )
    with session_scope(engine) as session:
        bulk_insert(session, "members", members)
        bulk_insert(session, "consent_events", consent)
        _, key = accounts.create(db_session=session, name="bench")
    return key


def _batches(start: datetime) -> list[list[dict[str, object]]]:
    rng = np.random.default_rng(9)
    total = SECONDS * RATE
    members = rng.integers(1, MEMBERS + 1, size=total)
    events = [
        {
            "id": f"cart-{i}",
            "member_id": int(members[i]),
            "kind": "cart",
            "occurred_at": (start + timedelta(milliseconds=i)).isoformat(),
            "payload": {"product": "有机牛奶 1L"},
        }
        for i in range(total)
    ]
    return [events[i : i + BATCH] for i in range(0, total, BATCH)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _send_paced(url: str, key: str, batches: list[list[dict[str, object]]]) -> list[float]:
    """Sends each batch when it is due (RATE events a second); returns each one's latency."""
    latencies: list[float] = [0.0] * len(batches)
    interval = BATCH / RATE
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=120, headers=headers) as client:
        client.post(url, json={"events": []}).raise_for_status()  # warm-up
        started = time.perf_counter()

        def send(index: int) -> None:
            due = started + index * interval
            time.sleep(max(0.0, due - time.perf_counter()))
            client.post(url, json={"events": batches[index]}).raise_for_status()
            latencies[index] = time.perf_counter() - due

        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(send, range(len(batches))))
    return latencies


def _measure(engine: Engine, store: str) -> None:
    key = _seed(engine)
    app = create_app(engine)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    batches = _batches(datetime.now(UTC))
    latencies = _send_paced(f"http://127.0.0.1:{port}/api/v1/events:batch", key, batches)
    server.should_exit = True
    thread.join()
    with engine.connect() as connection:
        queued = connection.execute(
            text("SELECT COUNT(*) FROM messages WHERE trigger_id IS NOT NULL AND state = 'queued'")
        ).scalar_one()
        stored = connection.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
    p95, p50 = float(np.percentile(latencies, 95)), float(np.percentile(latencies, 50))
    print(
        f"{store}: {stored:,} cart events at {RATE:,}/s in batches of {BATCH};"
        f" {queued:,} reminders queued; latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
    )
    report(
        f"cart events to queued trigger messages, p95 ({store}, {RATE:,} events/s)",
        p95,
        "s",
        f"<= {TARGET:.1f} s",
        met=p95 <= TARGET,
    )


def run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'triggers.db'}")
        migrate.upgrade(engine)
        _measure(engine, "SQLite")
        engine.dispose()
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    engine = make_engine(POSTGRES_URL, schema=SCHEMA)
    try:
        migrate.upgrade(engine)
        _measure(engine, "PostgreSQL")
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    run()
