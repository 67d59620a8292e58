"""The crash test: a `tidings worker` killed with SIGKILL again and again, restarted each time,
still brings every message to one final state, and no phone gets the campaign twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from .conftest import add_campaign, add_messages, inbox_lines, states

MESSAGES = 20_000
KILLS = 6
SETTLED = {"delivered", "failed", "expired", "unknown"}


def _worker_env(engine: Engine, inbox: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TIDINGS_DATABASE_URL=engine.url.render_as_string(hide_password=False),
        TIDINGS_SIMULATOR_INBOX=str(inbox),
        TIDINGS_SIMULATOR_LATENCY_MS="5",
        TIDINGS_SIMULATOR_RECEIPT_DELAY="0-0.5",
        TIDINGS_SIMULATOR_THROTTLE_SHARE="0.02",
        TIDINGS_DISPATCH_BATCH_SIZE="500",
        TIDINGS_DISPATCH_LEASE_SECONDS="2",
        TIDINGS_DISPATCH_RECEIPT_TIMEOUT="2",
        TIDINGS_SEND_WINDOW="00:00-00:00",
        TIDINGS_QUIET_HOURS="",
    )
    return env


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tidings", "worker", "--once", "--concurrency", "2"]
    with log.open("ab") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_killed_workers_never_send_a_message_twice(engine: Engine, tmp_path: Path) -> None:
    campaign = add_campaign(engine)
    add_messages(engine, MESSAGES, campaign_id=campaign)
    inbox, log = tmp_path / "inbox.jsonl", tmp_path / "worker.log"
    env = _worker_env(engine, inbox)
    chance = random.Random(int(time.time()))
    kills = stranded = 0
    for _ in range(KILLS):
        worker = _start(env, log)
        sent_before = _size(inbox)
        while worker.poll() is None and _size(inbox) == sent_before:
            time.sleep(0.01)  # wait until this worker is sending, past its start-up
        time.sleep(chance.uniform(0.0, 0.4))
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            kills += 1
        worker.wait()
        stranded += states(engine).get("submitting", 0)
    for _ in range(5):  # restart until a run ends by itself with nothing left to send
        worker = _start(env, log)
        assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]
        if set(states(engine)) <= SETTLED:  # answers to members' replies included
            break
    assert kills >= 3, "the worker ended before it could be killed: the test proved nothing"
    assert stranded > 0, "no kill caught a message in flight: the test proved nothing"

    # The simulated members reply now and then, and their replies are answered by messages of
    # their own: the campaign's messages are the ones counted here.
    counted = states(engine, campaign_id=campaign)
    assert set(counted) <= SETTLED, counted
    assert sum(counted.values()) == MESSAGES
    received = [line for line in inbox_lines(inbox) if line["campaign_id"] == campaign]
    per_message = Counter(line["message_id"] for line in received)
    per_phone = Counter(line["phone"] for line in received)
    assert [m for m, n in per_message.items() if n > 1] == []
    assert [p for p, n in per_phone.items() if n > 1] == []
    with engine.connect() as connection:
        taken = set(
            connection.execute(
                text(
                    "SELECT id FROM messages"
                    " WHERE provider_message_id IS NOT NULL AND campaign_id = :campaign"
                ),
                {"campaign": campaign},
            ).scalars()
        )
    # The simulator can be asked, so nothing is left unknown: what the ledger says was taken
    # is exactly what the handsets hold.
    assert counted.get("unknown", 0) == 0
    assert set(per_message) == taken
