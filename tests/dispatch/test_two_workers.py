"""Two workers on PostgreSQL, each with its own connections, share a send without a duplicate."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from sqlalchemy import Engine, text

from tidings.config import Settings
from tidings.db import make_engine
from tidings.dispatch.worker import Worker, WorkerReport

from .conftest import add_campaign, add_messages, inbox_lines, states


@pytest.fixture
def postgres(postgres_store: Engine) -> Engine:
    with postgres_store.begin() as connection:
        connection.execute(
            text(
                "TRUNCATE delivery_receipts, messages, variants, campaigns RESTART IDENTITY CASCADE"
            )
        )
    return postgres_store


@pytest.mark.postgres
def test_two_workers_send_5000_messages_and_no_handset_gets_one_twice(
    postgres: Engine, settings: Settings
) -> None:
    campaign = add_campaign(postgres)
    ids = add_messages(postgres, 5000, campaign_id=campaign)
    settings.dispatch_batch_size = 250
    url = postgres.url.render_as_string(hide_password=False)
    reports: list[WorkerReport] = []

    def work(name: str) -> None:
        engine = make_engine(url)  # a pool of its own, as another process would have
        worker = Worker(engine, settings=settings, concurrency=2, owner=name)
        reports.append(asyncio.run(worker.run(once=True)))
        engine.dispose()

    threads = [threading.Thread(target=work, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    # Simulated members reply now and then and get answers: count the campaign's messages.
    lines = inbox_lines(settings.simulator_inbox)
    received = Counter(line["message_id"] for line in lines if line["campaign_id"] == campaign)
    assert set(received) == set(ids)
    assert [n for n in received.values() if n > 1] == []
    assert states(postgres, campaign_id=campaign) == {"delivered": 5000}
    answers = len(lines) - len(ids)
    assert sum(report.tally.counts.get("submitted", 0) for report in reports) == 5000 + answers
