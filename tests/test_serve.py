"""`tidings serve` starts a real server that answers health and guards the API with keys."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tidings import migrate
from tidings.accounts import service as accounts
from tidings.db import make_engine, session_scope

# Seconds a started `tidings serve` may take to answer: its imports alone took 50 s on two
# cores busy with the other workers of a parallel run and other suites.
STARTUP_TIMEOUT = 120.0
# One worker of a parallel run takes them all: they share one server.
pytestmark = pytest.mark.xdist_group("serve")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _store_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'tidings.db'}"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the served store, one for the module."""
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def api_key(store_dir: Path) -> str:
    """A key holding messages:write, made before the server starts."""
    engine = make_engine(_store_url(store_dir))
    migrate.upgrade(engine)
    with session_scope(engine) as db_session:
        _, key = accounts.create(db_session=db_session, name="pos", scopes=["messages:write"])
    engine.dispose()
    return key


@pytest.fixture(scope="module")
def server(store_dir: Path, api_key: str) -> Iterator[str]:
    """One `tidings serve` for the module's tests, which only add to its store: starting
    one takes seconds on a busy machine."""
    port = _free_port()
    env = {**os.environ, "TIDINGS_DATABASE_URL": _store_url(store_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/api/v1/health", timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"tidings serve exited: {output}")
                time.sleep(0.2)
        else:
            pytest.fail("tidings serve did not answer")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_answers_health_and_asks_for_a_key(server: str) -> None:
    health = httpx.get(f"{server}/api/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    refused = httpx.post(f"{server}/api/v1/members:batch", json={"members": []})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert "Authorization: Bearer" in refused.json()["detail"]
    docs = httpx.get(f"{server}/openapi.json")
    assert "/api/v1/health" in docs.json()["paths"]


def test_serve_queues_a_message_sent_over_http(api_key: str, server: str, store_dir: Path) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"idempotency_key": "order-1", "phone": "13800000001", "text": "您的订单已发货。"}
    first = httpx.post(f"{server}/api/v1/messages", json=body, headers=headers)
    again = httpx.post(f"{server}/api/v1/messages", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200), first.text
    assert first.json()["state"] == "queued"
    assert again.json()["id"] == first.json()["id"]
    bad = httpx.post(f"{server}/api/v1/messages", json={**body, "phone": None}, headers=headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    engine = make_engine(_store_url(store_dir))
    with engine.connect() as connection:
        texts = connection.execute(text("SELECT text FROM messages")).scalars().all()
    engine.dispose()
    assert len(texts) == 1 and texts[0].endswith("您的订单已发货。")
