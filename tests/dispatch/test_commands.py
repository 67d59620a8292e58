"""`tidings worker` sends what is queued; `tidings serve` sends too, unless --no-worker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tidings import migrate
from tidings.db import make_engine

from .conftest import add_campaign, add_messages, inbox_lines, states

ALL_DAY = {
    "TIDINGS_SEND_WINDOW": "00:00-00:00",
    "TIDINGS_QUIET_HOURS": "",
    "TIDINGS_SIMULATOR_RECEIPT_DELAY": "0-0.2",
    "TIDINGS_SIMULATOR_FAILURE_RATE": "0",
    "TIDINGS_SIMULATOR_DELIVERY_RATE": "1",
}
# Seconds a started `tidings serve` may take to answer: its imports alone took 50 s on two
# cores busy with the other workers of a parallel run and other suites.
STARTUP_TIMEOUT = 120.0


def test_worker_once_sends_the_queue_and_reports_as_json(
    engine: Engine,
    cli,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    for name, value in ALL_DAY.items():
        monkeypatch.setenv(name, value)
    campaign = add_campaign(engine)
    ids = add_messages(engine, 300, campaign_id=campaign)
    result = cli("worker", "--once", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output.strip().splitlines()[-1])
    assert counts["submitted"] == 300
    assert states(engine) == {"delivered": 300}
    received = inbox_lines(cli.workdir / "var" / "simulator-inbox.jsonl")
    assert sorted(line["message_id"] for line in received) == ids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def queued_store(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, Engine]]:
    """A SQLite store with 50 queued messages, and the environment of a server on it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'tidings.db'}")
    migrate.upgrade(engine)
    add_messages(engine, 50, campaign_id=add_campaign(engine))
    env = {
        **os.environ,
        **ALL_DAY,
        "TIDINGS_DATABASE_URL": f"sqlite:///{tmp_path / 'tidings.db'}",
        "TIDINGS_VAR_DIR": str(tmp_path / "var"),
    }
    yield env, tmp_path / "var" / "simulator-inbox.jsonl", engine
    engine.dispose()


def _serve(env: dict[str, str], *options: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "tidings", "serve", "--port", str(port), *options]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"{base}/api/v1/health", timeout=1.0)
            return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("tidings serve did not answer")


@pytest.mark.slow
def test_serve_sends_queued_messages_in_process(
    queued_store: tuple[dict[str, str], Path, Engine],
) -> None:
    env, inbox, engine = queued_store
    process, _ = _serve(env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(inbox_lines(inbox)) < 50 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert len({line["message_id"] for line in inbox_lines(inbox)}) == 50
    assert set(states(engine)) <= {"submitted", "delivered"}


@pytest.mark.slow
def test_serve_with_no_worker_leaves_sending_to_workers(
    queued_store: tuple[dict[str, str], Path, Engine],
) -> None:
    env, inbox, engine = queued_store
    process, _ = _serve(env, "--no-worker")
    try:
        time.sleep(2.0)  # far longer than an in-process dispatcher needs for its first claim
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert inbox_lines(inbox) == []
    assert states(engine) == {"queued": 50}
