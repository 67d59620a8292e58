"""The `tidings worker` command: runs the dispatcher in its own process."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import typer

from tidings.config import get_settings
from tidings.dispatch.worker import Worker, WorkerReport
from tidings.migrate import ready_engine


def worker_command(
    concurrency: int = typer.Option(
        1, "--concurrency", "-c", min=1, help="Batches in flight at once in this process."
    ),
    once: bool = typer.Option(
        False, "--once", help="Send what is due, wait for receipts, then exit."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run's counts as JSON."),
) -> None:
    """Sends queued messages through their providers until stopped (Ctrl-C or SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    worker = Worker(ready_engine(), settings=settings, concurrency=concurrency)
    report = asyncio.run(_run(worker, once=once))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(report.as_dict().items()))
        typer.echo(f"worker {worker.owner} stopped: {counts or 'nothing to do'}")


async def _run(worker: Worker, *, once: bool) -> WorkerReport:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, worker.stop)
    return await worker.run(once=once)
