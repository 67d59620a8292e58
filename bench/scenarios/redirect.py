"""Short-link redirects served by `tidings serve` on SQLite, driven over keep-alive HTTP/1.1.

Target (issue 8): at least 2,000 redirects a second with a p99 latency of at most 20 ms on
this machine (2 cores, shared by the server and this load generator). The server is a real
`tidings serve --no-worker` process on a SQLite store holding 100,000 short links; the load
generator keeps CONNECTIONS raw keep-alive connections busy, each sending a request as soon
as the previous answer is in, over codes drawn at random from the store. The first WARMUP
seconds fill the server's link cache and are not measured. Latency is from writing a request
to reading the end of its answer. Afterwards the server is stopped (SIGTERM, as a service
manager does) and every click must be in the store: the figure fails if one is lost.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from sqlalchemy import text

from bench.harness import report
from tidings import migrate
from tidings.bulk import bulk_insert
from tidings.db import make_engine, session_scope
from tidings.tracking.codes import ALPHABET, CODE_LENGTH

LINKS = 100_000
CONNECTIONS = int(os.environ.get("BENCH_REDIRECT_CONNECTIONS", "16"))
SECONDS = float(os.environ.get("BENCH_REDIRECT_SECONDS", "10"))
WARMUP = 3.0  # seconds, not measured
TARGET_RATE = 2000.0  # redirects per second
TARGET_P99_MS = 20.0
STARTUP_TIMEOUT = 60.0  # seconds
DATA = Path(__file__).resolve().parent.parent / "data"
USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI"
)


def _store(path: Path) -> list[str]:
    """A fresh SQLite store with LINKS short links; returns their codes."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    rng = np.random.default_rng(8)
    letters = np.array(list(ALPHABET))
    codes = ["".join(row) for row in letters[rng.integers(0, 62, (LINKS, CODE_LENGTH))]]
    codes = list(dict.fromkeys(codes))
    links = pl.DataFrame({"code": codes}).with_columns(
        target_url=pl.lit("https://shop.example.com/sale?utm_source=sms&utm_content=")
        + pl.col("code"),
        created_at=pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")),
    )
    with session_scope(engine) as session:
        bulk_insert(session, "short_links", links)
    engine.dispose()
    return codes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TIDINGS_DATABASE_URL": f"sqlite:///{path}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1.0)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                output = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"tidings serve exited: {output}") from None
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("tidings serve did not answer within a minute")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: the next request goes when the answer is in, or, when
    paced, at its next slot (latency then counts from the slot, so a slow answer that delays
    the next request is not hidden)."""

    def __init__(self, codes: list[str], run: _Run) -> None:
        self.codes = codes
        self.run = run
        self.buffer = b""
        self.slot = 0.0
        self.transport: asyncio.Transport | None = None
        self.done = asyncio.get_running_loop().create_future()
        self.count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.slot = time.perf_counter() + random.random() * self.run.interval
        self._send()

    def _send(self) -> None:
        code = random.choice(self.codes)
        request = (
            f"GET /s/{code} HTTP/1.1\r\nHost: t.example.cn\r\nUser-Agent: {USER_AGENT}\r\n\r\n"
        )
        if not self.run.interval:
            self.slot = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        if not head.startswith(b"http/1.1 302"):
            raise RuntimeError(f"unexpected answer: {head[:40]!r}")
        self.buffer = self.buffer[end + 4 + length :]
        now = time.perf_counter()
        self.count += 1
        if now >= self.run.measure_from:
            self.run.latencies.append(now - self.slot)
        if now >= self.run.stop_at:
            assert self.transport is not None
            self.transport.close()
        elif self.run.interval:
            self.slot += self.run.interval
            asyncio.get_running_loop().call_later(max(0.0, self.slot - now), self._send)
        else:
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.count)


@dataclass
class _Run:
    """One load run: its pace (0: flat out), measured window and latencies."""

    interval: float
    measure_from: float
    stop_at: float
    latencies: list[float] = field(default_factory=list)


async def _drive(port: int, codes: list[str], *, rate: float | None) -> tuple[_Run, int]:
    """Runs the load flat out or at `rate` requests a second; returns the run and how many
    answers came (warm-up included)."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    interval = CONNECTIONS / rate if rate else 0.0
    run = _Run(interval, start + WARMUP, start + WARMUP + SECONDS)
    connections = []
    for _ in range(CONNECTIONS):
        _, protocol = await loop.create_connection(
            lambda: _Connection(codes, run), "127.0.0.1", port
        )
        connections.append(protocol)
    answered = sum(await asyncio.gather(*(c.done for c in connections)))
    return run, answered


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _clicks(path: Path) -> int:
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        count = int(connection.execute(text("SELECT COUNT(*) FROM clicks")).scalar_one())
    engine.dispose()
    return count


def _figures(run: _Run) -> tuple[float, float, float]:
    """Rate (per second), p50 and p99 (ms) of a run's measured window."""
    rate = len(run.latencies) / SECONDS
    p50, p99 = (float(np.percentile(run.latencies, q)) * 1000 for q in (50, 99))
    return rate, p50, p99


def run() -> None:
    DATA.mkdir(exist_ok=True)
    path = DATA / "redirect.db"
    codes = _store(path)
    port = _free_port()
    server = _serve(path, port)
    cpu_before = _cpu_seconds(server.pid)
    try:
        flat_out, answered = asyncio.run(_drive(port, codes, rate=None))
        cpu = _cpu_seconds(server.pid) - cpu_before
        paced, more = asyncio.run(_drive(port, codes, rate=TARGET_RATE))
        answered += more
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    written = _clicks(path)
    rate, p50, p99 = _figures(flat_out)
    print(
        f"redirect flat out over {CONNECTIONS} connections: {rate:,.0f}/s, p50 {p50:.1f} ms,"
        f" p99 {p99:.1f} ms; server CPU {cpu / (len(flat_out.latencies) or 1) * 1e6:.0f} µs"
        " per redirect",
        flush=True,
    )
    paced_rate, paced_p50, paced_p99 = _figures(paced)
    print(
        f"redirect at {TARGET_RATE:,.0f}/s: {paced_rate:,.0f}/s, p50 {paced_p50:.1f} ms,"
        f" p99 {paced_p99:.1f} ms; clicks written {written:,} of {answered:,}",
        flush=True,
    )
    report("redirect_rate", rate, "req/s", f">= {TARGET_RATE:,.0f} req/s", met=rate >= TARGET_RATE)
    report(
        "redirect_p99_at_2000",
        paced_p99,
        "ms",
        f"<= {TARGET_P99_MS:.0f} ms at {TARGET_RATE:,.0f} req/s",
        met=paced_p99 <= TARGET_P99_MS and paced_rate >= TARGET_RATE * 0.98,
    )
    report("redirect_clicks_kept", written, "clicks", f"= {answered:,}", met=written == answered)
