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

STARTUP_TIMEOUT = 30.0  # seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "TIDINGS_DATABASE_URL": f"sqlite:///{tmp_path / 'tidings.db'}"}
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
