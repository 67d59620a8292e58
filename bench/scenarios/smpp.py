"""The worker sending through an SMPP account to the loopback SMSC (tests/providers/smsc.py,
aiosmpplib's codec, in a process of its own): submit_sm per second with receipts flowing back,
a configured rate held in its busiest second, and throttling plus a cut connection losing and
doubling nothing. The machine is shared: run it more than once and read the best and the
typical figure."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.harness import report
from bench.scenarios.dispatch import queue_campaign
from tidings import migrate
from tidings.config import Settings
from tidings.db import make_engine
from tidings.dispatch.worker import Worker, WorkerReport
from tidings.providers.smpp import SmppAccount, SmppProvider

SMSC = Path(__file__).parents[2] / "tests" / "providers" / "smsc.py"
ACCOUNT = "smsc-bench"
THROUGHPUT_MESSAGES = 30_000
RATE_MESSAGES = 16_000
CONFIGURED_RATE = 2_000  # submit_sm per second
FAULT_MESSAGES = 10_000
THROTTLE_SHARE = 0.05
DROP_AT = 3_000  # the SMSC cuts a connection at this submit
BINDS, WINDOW = 2, 50


class Smsc:
    """The loopback SMSC in a child process; its record is read when it stops."""

    def __init__(self, work: Path, *options: str) -> None:
        self.record = work / f"smsc-{time.monotonic_ns()}.json"
        command = [sys.executable, str(SMSC), "--record", str(self.record), *options]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        return dict(json.loads(self.record.read_text()))


class TimedSmppProvider(SmppProvider):
    """The SMPP provider, noting when each submit_sm is handed to the library."""

    def __init__(self, *args: Any, **keys: Any) -> None:
        super().__init__(*args, **keys)
        self.sent_at: list[float] = []  # time.monotonic()

    async def _pace(self, give_up: float) -> None:
        if self._rate is None:
            await super()._pace(give_up)
            self.sent_at.append(time.monotonic())
        else:  # the moment the rate admitted it, the one the rate holds to
            self.sent_at.append(await self._rate.take(give_up))


def _send(engine: Engine, port: int, **keys: Any) -> tuple[WorkerReport, TimedSmppProvider]:
    account = {
        "type": "smpp",
        "host": "127.0.0.1",
        "port": port,
        "system_id": "tidings",
        "password": "secret",
        "source_addr": "10690000",
        "binds": BINDS,
        "window": WINDOW,
        **keys,
    }
    settings = Settings(
        provider_accounts={ACCOUNT: account},
        default_provider=ACCOUNT,
        dispatch_lease_seconds=8.0,
        dispatch_receipt_timeout=10.0,
        send_window="00:00-00:00",
        quiet_hours="",
    )
    provider = TimedSmppProvider(
        ACCOUNT,
        SmppAccount.parse(ACCOUNT, account),
        price_per_part_cents=5,
        region="CN",
        lease=settings.dispatch_lease_seconds,
    )
    worker = Worker(engine, settings=settings, concurrency=2, providers={ACCOUNT: provider})
    return asyncio.run(worker.run(once=True)), provider


def _states(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT state, COUNT(*) FROM messages GROUP BY state"))
        return Counter({state: n for state, n in rows})


def _busiest_second(times: list[float]) -> int:
    times = sorted(times)
    busiest = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


def _rate(times: list[float]) -> float:
    """Submits per second over the whole seconds of a run (a part second would flatter it)."""
    first = min(times)
    whole = int(max(times) - first)
    if whole == 0:
        return 0.0
    return sum(1 for moment in times if moment < first + whole) / whole


def _throughput(work: Path) -> None:
    engine = _sqlite(work / "throughput.db")
    queue_campaign(engine, THROUGHPUT_MESSAGES, provider=ACCOUNT)
    smsc = Smsc(work)
    result, _ = _send(engine, smsc.port)
    record = smsc.stop()
    rate = _rate([part["at"] for part in record["accepted"]])
    settled = _states(engine).get("delivered", 0)
    report(
        f"smpp submit_sm to the loopback SMSC, {BINDS} binds x window {WINDOW}, sqlite",
        rate,
        "submit_sm/s",
        f"≥ 2,000 with receipts back (receipts applied: {result.receipts:,},"
        f" delivered: {settled:,} of {THROUGHPUT_MESSAGES:,})",
        met=rate >= 2_000 and settled == THROUGHPUT_MESSAGES,
    )


def _configured_rate(work: Path) -> None:
    engine = _sqlite(work / "rate.db")
    queue_campaign(engine, RATE_MESSAGES, provider=ACCOUNT)
    smsc = Smsc(work)
    _, provider = _send(engine, smsc.port, rate_per_second=CONFIGURED_RATE)
    arrived = [part["at"] for part in smsc.stop()["accepted"]]
    sent = _busiest_second(provider.sent_at)
    report(
        f"smpp at a configured {CONFIGURED_RATE:,} submit_sm/s: busiest second as sent",
        sent,
        "submit_sm",
        f"≤ {CONFIGURED_RATE:,} (average {_rate(provider.sent_at):,.0f}/s;"
        f" busiest second as the SMSC read them: {_busiest_second(arrived):,})",
        met=sent <= CONFIGURED_RATE,
    )


def _faults(work: Path) -> None:
    engine = _sqlite(work / "faults.db")
    queue_campaign(engine, FAULT_MESSAGES, provider=ACCOUNT)
    smsc = Smsc(work, "--throttle-share", str(THROTTLE_SHARE), "--drop-at", str(DROP_AT))
    started = time.monotonic()
    result, _ = _send(engine, smsc.port, throttle_pause=0.05)
    took = time.monotonic() - started
    record = smsc.stop()
    accepted = Counter(part["destination"] for part in record["accepted"])
    doubled = sum(n - 1 for n in accepted.values())
    counted = _states(engine)
    lost = FAULT_MESSAGES - counted.get("delivered", 0) - counted.get("unknown", 0)
    report(
        f"smpp with {THROTTLE_SHARE:.0%} throttled and a connection cut: lost or doubled",
        lost + doubled,
        "messages",
        f"0 (throttled {record['throttled']:,}, retried {result.tally.counts.get('retried', 0):,},"
        f" unknown after the cut {counted.get('unknown', 0)} ≤ {WINDOW}, {took:.0f} s)",
        met=lost == 0 and doubled == 0 and counted.get("unknown", 0) <= WINDOW,
    )


def _sqlite(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    return engine


def run() -> None:
    """Measures SMPP sending on SQLite."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        os.environ.setdefault("SMPP34_WORKER_THREADS", "1")  # two shared cores
        _throughput(work)
        _configured_rate(work)
        _faults(work)
