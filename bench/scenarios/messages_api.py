"""Transactional messages accepted by `POST /api/v1/messages` on SQLite.

Target (issue 11): at least 500 requests a second, each answered 201 with its message
queued, on this machine (2 cores, shared by the server and this load generator). The server
is a real `tidings serve --no-worker` process on a fresh SQLite store with MEMBERS members;
the load generator is an asyncio client keeping CONCURRENCY keep-alive connections busy
(HTTP/1.1 written by hand: httpx would take most of the CPU itself), each request a
distinct idempotency key for a member drawn at random, with a template and values. The first
WARMUP seconds are not measured. Latency is from sending a request to its full answer.
Afterwards every 201 answer must have its queued message in the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from sqlalchemy import text

from bench.harness import report
from bench.scenarios.redirect import _cpu_seconds, _free_port
from tidings import migrate
from tidings.accounts import service as accounts
from tidings.bulk import bulk_insert
from tidings.db import make_engine, session_scope

MEMBERS = 10_000
CONCURRENCY = int(os.environ.get("BENCH_MESSAGES_CONCURRENCY", "32"))
SECONDS = float(os.environ.get("BENCH_MESSAGES_SECONDS", "10"))
WARMUP = 2.0  # seconds, not measured
TARGET_RATE = 500.0  # requests per second
STARTUP_TIMEOUT = 60.0  # seconds
DATA = Path(__file__).resolve().parent.parent / "data"
TEMPLATE = "{surname}，您的订单{order}已发货，快递单号{parcel}，请留意查收。"


def _store(path: Path) -> str:
    """A fresh SQLite store with MEMBERS members; returns an API key."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    ids = list(range(1, MEMBERS + 1))
    members = pl.DataFrame(
        {
            "id": ids,
            "phone": [f"+86139{i:08d}" for i in ids],
            "phone_status": ["ok"] * MEMBERS,
            "name": [["王小明", "李芳", "张伟"][i % 3] for i in ids],
            "gender": [["M", "F", "M"][i % 3] for i in ids],
            "points": [0] * MEMBERS,
        }
    ).with_columns(
        birthday_is_lunar=pl.lit(False),
        created_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")),
        updated_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")),
    )
    with session_scope(engine) as session:
        bulk_insert(session, "members", members)
        _, key = accounts.create(db_session=session, name="bench")
    engine.dispose()
    return key


async def _connection_loop(
    port: int, key: str, number: int, stop_at: float, measure_from: float
) -> tuple[list[float], int, int]:
    """One keep-alive connection posting a message as soon as the previous answer is in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    accepted = errors = sent = 0
    while time.perf_counter() < stop_at:
        sent += 1
        body = json.dumps(
            {
                "idempotency_key": f"bench-{number}-{sent}",
                "member_id": random.randint(1, MEMBERS),
                "template": TEMPLATE,
                "values": {"order": f"SO{number}{sent:06d}", "parcel": f"SF{sent:010d}"},
            },
            ensure_ascii=False,
        ).encode()
        head = (
            f"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        writer.write(head + body)
        answer_head = await reader.readuntil(b"\r\n\r\n")
        length = int(answer_head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        answer = json.loads(await reader.readexactly(length))
        finished = time.perf_counter()
        queued = answer_head.startswith(b"HTTP/1.1 201") and answer.get("state") == "queued"
        accepted += queued
        errors += not queued
        if started >= measure_from:
            latencies.append(finished - started)
    writer.close()
    return latencies, accepted, errors


async def _drive(port: int, key: str) -> tuple[list[float], int, int]:
    start = time.perf_counter()
    results = await asyncio.gather(
        *(
            _connection_loop(port, key, n, start + WARMUP + SECONDS, start + WARMUP)
            for n in range(CONCURRENCY)
        )
    )
    latencies = [value for result in results for value in result[0]]
    return latencies, sum(r[1] for r in results), sum(r[2] for r in results)


def _serve(path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`tidings serve --no-worker` on the store; its log goes to a file (a pipe nobody reads
    would fill with access lines and stall the server)."""
    env = {**os.environ, "TIDINGS_DATABASE_URL": f"sqlite:///{path}"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1.0)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(f"tidings serve exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("tidings serve did not answer within a minute")


def _queued(path: Path) -> int:
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        count = connection.execute(text("SELECT COUNT(*) FROM messages WHERE state = 'queued'"))
        total = int(count.scalar_one())
    engine.dispose()
    return total


def run() -> None:
    DATA.mkdir(exist_ok=True)
    path = DATA / "messages_api.db"
    key = _store(path)
    port = _free_port()
    server = _serve(path, port, DATA / "messages_api.log")
    cpu_before = _cpu_seconds(server.pid)
    try:
        latencies, accepted, errors = asyncio.run(_drive(port, key))
        cpu = _cpu_seconds(server.pid) - cpu_before
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    stored = _queued(path)
    rate = len(latencies) / SECONDS
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    print(
        f"messages_api over {CONCURRENCY} requests in flight: {rate:,.0f}/s, p50 {p50:.1f} ms,"
        f" p99 {p99:.1f} ms; queued {accepted:,} (in the store: {stored:,}), refused {errors:,};"
        f" server CPU {cpu / max(accepted + errors, 1) * 1e3:.2f} ms per request;"
        f" load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    report(
        "messages_api_rate",
        rate,
        "req/s",
        f">= {TARGET_RATE:,.0f} req/s, each queued",
        met=rate >= TARGET_RATE and errors == 0 and stored == accepted,
    )
