"""Fixtures of the notification tests: an API client with a key, a member, a frozen clock,
and a worker run through the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.accounts import service as accounts
from tidings.app import create_app
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker
from tidings.members.models import Member

# Wednesday 2 December 2026, 14:00 in Shanghai: no quiet hours.
NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
# 23:30 in Shanghai: quiet hours.
NIGHT = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
PHONE = "+8613800000001"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A fully delivering simulator with a temp inbox, and known secrets."""
    return Settings(
        simulator_inbox=tmp_path / "inbox.jsonl",
        simulator_receipt_delay="0-0.05",
        simulator_failure_rate=0.0,
        simulator_delivery_rate=1.0,
        dispatch_receipt_timeout=2.0,
        brand_name="好邻居",
        callback_secret="cb-secret",
        verification_secret="code-secret",
        preference_secret="page-secret",
    )


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    with session_scope(engine) as db_session:
        _, key = accounts.create(db_session=db_session, name="pos")
    app = create_app(engine)
    app.state.settings = settings
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, headers=headers) as test_client:
        yield test_client


@pytest.fixture
def member(engine: Engine) -> int:
    with session_scope(engine) as session:
        person = Member(phone=PHONE, name="陈晓燕", gender="F", points=1200)
        session.add(person)
        session.flush()
        return person.id


def run_worker(engine: Engine, settings: Settings) -> dict[str, int]:
    """Sends everything due through the simulator and waits for the receipts (on the real
    clock, at any hour: the policy decided the times already)."""
    awake = settings.model_copy(update={"quiet_hours": "", "send_window": "00:00-23:59"})
    return asyncio.run(Worker(engine, settings=awake).run(once=True)).as_dict()
