"""Replies accepted through the HTTP callback path with their effects applied.

Target (issue 7): at least 1,000 replies a second. A real uvicorn server takes Aliyun SmsUp
pushes (100 replies each, as Aliyun batches them) from 4 concurrent senders; each push is
verified, read, stored, linked to its member and last message, and handled in the same
transaction: opt-outs suppressed, consent recorded and confirmed, points answered, bookings
recorded, unclear replies ticketed. The figure is replies per second from the first push
sent to the last one acknowledged. Setting up members and their last messages is not timed.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import polars as pl
import uvicorn
from sqlalchemy import Engine, text

from bench.harness import report
from tidings import migrate
from tidings.app import create_app
from tidings.bulk import bulk_insert
from tidings.config import Settings
from tidings.db import make_engine, session_scope

REPLIES = int(os.environ.get("BENCH_REPLIES", "20000"))
MEMBERS = 50_000
PUSH_SIZE = 100  # replies per Aliyun SmsUp push
SENDERS = 4  # concurrent pushes
TARGET = 1000.0  # replies per second
TOKEN = "bench-token"
POSTGRES_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMA = "bench_replies"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# What members text back, roughly as often as they do after a promotion.
MIX = [
    ("TD", 25), ("退订", 10), ("积分", 20), ("JF", 5), ("好的", 15), ("预约明天下午3点", 5),
    ("什么时候到货？", 10), ("不要退订", 5), ("😀", 5),
]  # fmt: skip
SETTINGS = Settings(
    provider_accounts={
        "ali": {
            "type": "aliyun",
            "access_key_id": "LTAI",
            "access_key_secret": "s",
            "sign_name": "好邻居",
            "callback_token": TOKEN,
        }
    }
)


def _phone(index: int) -> str:
    return f"+86138{index:08d}"


def _seed(engine: Engine) -> None:
    now = datetime.now(UTC)
    members = pl.DataFrame(
        {
            "id": range(1, MEMBERS + 1),
            "phone": [_phone(i) for i in range(MEMBERS)],
            "phone_status": ["ok"] * MEMBERS,
            "birthday_is_lunar": [False] * MEMBERS,
            "points": [i % 5000 for i in range(MEMBERS)],
            "created_at": [now] * MEMBERS,
            "updated_at": [now] * MEMBERS,
        }
    )
    messages = pl.DataFrame(
        {
            "dedupe_key": [f"bench:{i}" for i in range(MEMBERS)],
            "member_id": range(1, MEMBERS + 1),
            "phone": [_phone(i) for i in range(MEMBERS)],
            "kind": ["marketing"] * MEMBERS,
            "priority": [9] * MEMBERS,
            "text": ["【好邻居】会员日全场8折，拒收请回复R"] * MEMBERS,
            "parts": [1] * MEMBERS,
            "cost_cents": [5] * MEMBERS,
            "state": ["delivered"] * MEMBERS,
            "rollout_stage": [0] * MEMBERS,
            "send_at": [now - timedelta(hours=1)] * MEMBERS,
            "provider": ["ali"] * MEMBERS,
            "attempts": [1] * MEMBERS,
            "submitted_at": [now - timedelta(hours=1)] * MEMBERS,
            "created_at": [now] * MEMBERS,
            "updated_at": [now] * MEMBERS,
        }
    )
    with session_scope(engine) as session:
        bulk_insert(session, "members", members)
        bulk_insert(session, "messages", messages)


def _pushes() -> list[list[dict[str, str]]]:
    rng = random.Random(7)
    words = [word for word, weight in MIX for _ in range(weight)]
    stamp = datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    items = [
        {
            "phone_number": _phone(rng.randrange(MEMBERS))[3:],
            "content": rng.choice(words),
            "send_time": stamp,
            "dest_code": "1234",
            "sequence_id": f"bench-{i}",
        }
        for i in range(REPLIES)
    ]
    return [items[i : i + PUSH_SIZE] for i in range(0, len(items), PUSH_SIZE)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _measure(engine: Engine, store: str) -> None:
    app = create_app(engine)
    app.state.settings = SETTINGS
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    pushes = _pushes()
    url = f"http://127.0.0.1:{port}/hooks/aliyun/ali?token={TOKEN}"
    with httpx.Client(timeout=120) as client:
        client.post(url, json=pushes[0][:1]).raise_for_status()  # warm-up (jieba, caches)

        def send(push: list[dict[str, str]]) -> None:
            client.post(url, json=push).raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(send, pushes[1:]))
        seconds = time.perf_counter() - started
    server.should_exit = True
    thread.join()
    with engine.connect() as connection:
        handled = connection.execute(
            text("SELECT COUNT(*) FROM replies WHERE handled_at IS NOT NULL")
        ).scalar_one()
        effects = connection.execute(
            text(
                "SELECT (SELECT COUNT(*) FROM suppressions), (SELECT COUNT(*) FROM tickets),"
                " (SELECT COUNT(*) FROM messages WHERE campaign_id IS NULL AND kind <> 'marketing')"
            )
        ).one()
    sent = sum(len(push) for push in pushes[1:])
    rate = sent / seconds
    print(
        f"{store}: {sent:,} replies in {seconds:.1f} s; {handled:,} handled,"
        f" {effects[0]:,} suppressions, {effects[1]:,} tickets, {effects[2]:,} answers queued"
    )
    report(
        f"replies accepted via HTTP callback ({store}, {SENDERS} senders, {PUSH_SIZE}/push)",
        rate,
        "replies/s",
        f">= {TARGET:,.0f} replies/s",
        met=rate >= TARGET,
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'replies.db'}")
        migrate.upgrade(engine)
        _seed(engine)
        _measure(engine, "SQLite")
        engine.dispose()
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    engine = make_engine(POSTGRES_URL, schema=SCHEMA)
    try:
        migrate.upgrade(engine)
        _seed(engine)
        _measure(engine, "PostgreSQL")
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
