"""The simulator hands its members' replies to the worker, which stores them like any
provider's: linked to the member and to the message they answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loopback_providers.outbox import queue, replies
from sqlalchemy import Engine

from tidings.config import Settings
from tidings.dispatch.worker import Worker
from tidings.providers.simulator import REPLY_TEXTS


def test_the_worker_stores_simulated_replies(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(
        simulator_inbox=tmp_path / "inbox.jsonl",
        simulator_receipt_delay="0-0.05",
        simulator_failure_rate=0.0,
        simulator_delivery_rate=1.0,
        simulator_reply_rate=1.0,
        dispatch_receipt_timeout=5.0,
        send_window="00:00-00:00",
        quiet_hours="",
    )
    ids = queue(engine, "simulator", {f"+861380000{n:04d}": f"会员日 {n}" for n in range(20)})
    report = asyncio.run(Worker(engine, settings=settings).run(once=True)).as_dict()
    stored = replies(engine)
    # Every member answers the campaign message; those who wrote TD or R also get an
    # opt-out confirmation, which the simulated handsets (reply rate 1) answer in turn.
    to_campaign = {row[0]: row[3] for row in stored if row[3] in ids.values()}
    assert to_campaign == ids
    confirmed = sum(1 for row in stored if row[1] in ("TD", "R") and row[3] in ids.values())
    assert report["replies"] == len(stored) == 20 + confirmed
    assert all(row[1] in REPLY_TEXTS and row[2] is not None for row in stored)
