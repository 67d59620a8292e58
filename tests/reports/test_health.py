"""Sending health per campaign, provider and day: the rates read back what happened, each
breach is stored and posted once (signed), a failed post is tried again, and the worker's
housekeeping runs the check."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tidings import clock
from tidings.config import Settings
from tidings.db import session_scope
from tidings.dispatch.worker import Worker
from tidings.reports.health import (
    HealthInputError,
    Thresholds,
    campaign_health,
    check_health,
    findings,
    health_rows,
    stored_breaches,
)
from tidings.reports.models import HealthBreach

from .health_world import NOW, SENT, build

SECRET = "webhook-secret"


class Receiver:
    """A webhook receiver on the loopback: keeps each post; answers the queued statuses."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.posts.append((dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/health"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def _settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


def _by_scope(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["scope"], row["key"]): row for row in rows}


def test_rates_read_back_what_each_send_met(engine: Engine) -> None:
    sends = build(engine)
    weekend, quiet = sends["weekend"], sends["quiet"]
    with session_scope(engine) as session:
        rows = _by_scope(health_rows(db_session=session, days=7, now=NOW, settings=_settings()))
    ali = rows[("campaign", str(weekend.campaign_id))]
    delivered = weekend.delivered
    assert (ali["settled"], ali["delivered"], ali["undelivered"]) == (
        weekend.delivered + weekend.undelivered,
        delivered,
        weekend.undelivered,
    )
    assert (ali["replied"], ali["opted_out"], ali["complained"]) == (
        weekend.replied,
        weekend.opted_out,
        weekend.complained,
    )
    assert ali["delivery_rate"] == pytest.approx(delivered / (delivered + weekend.undelivered))
    assert ali["opt_out_rate"] == pytest.approx(weekend.opted_out / delivered)
    assert ali["complaint_rate"] == pytest.approx(weekend.complained / delivered)
    assert ali["reply_rate"] == pytest.approx(weekend.replied / delivered)
    assert ali["day"] == SENT.date().isoformat() and ali["healthy"] is False
    kinds = {finding["metric"]: finding["kind"] for finding in ali["findings"]}
    assert kinds == {
        "delivery_rate": "breach",
        "opt_out_rate": "breach",
        "complaint_rate": "breach",
    }

    calm = rows[("campaign", str(quiet.campaign_id))]
    assert calm["healthy"] is True
    [note] = calm["findings"]
    assert note["kind"] == "note" and note["text"].startswith("reply rate 2.0% is below")

    day = rows[("day", "all")]
    assert day["settled"] == 350 and day["delivered"] == delivered + quiet.delivered
    assert rows[("provider", "ten")]["healthy"] is True
    assert rows[("provider", "ali")]["opted_out"] == weekend.opted_out


def test_a_campaign_report_reads_its_own_health(engine: Engine) -> None:
    weekend = build(engine)["weekend"]
    with session_scope(engine) as session:
        health = campaign_health(db_session=session, campaign_id=weekend.campaign_id)
    assert health["campaign_id"] == weekend.campaign_id
    assert health["delivered"] == weekend.delivered and health["healthy"] is False
    [provider] = health["by_provider"]
    assert provider["key"] == "ali" and provider["complained"] == weekend.complained
    [day] = health["by_day"]
    assert day["day"] == SENT.date().isoformat()
    breach = next(item for item in health["findings"] if item["metric"] == "delivery_rate")
    assert (
        breach["text"] == "delivery rate 95.00% is below the 98.00% threshold (190 of 200 settled)"
    )


def test_too_few_messages_are_not_judged(engine: Engine) -> None:
    build(engine)
    with session_scope(engine) as session:
        rows = health_rows(
            db_session=session, days=7, now=NOW, settings=_settings(health_min_settled=1000)
        )
    assert {row["healthy"] for row in rows} == {True}
    assert {finding["kind"] for row in rows for finding in row["findings"]} == {"too_few"}


def test_each_breach_is_stored_and_posted_once_with_a_signature(
    engine: Engine, receiver: Receiver
) -> None:
    weekend = build(engine)["weekend"]
    settings = _settings(health_webhook_url=receiver.url, health_webhook_secret=SECRET)
    with session_scope(engine) as session:
        first = check_health(db_session=session, days=7, now=NOW, settings=settings)
    with session_scope(engine) as session:
        again = check_health(db_session=session, days=7, now=NOW, settings=settings)
    scopes = {(breach.scope, breach.scope_key) for breach in first}
    assert scopes == {("campaign", str(weekend.campaign_id)), ("provider", "ali"), ("day", "all")}
    assert len(first) == 9 and again == []
    bodies = receiver.bodies()
    assert len(bodies) == 9
    assert {(body["scope"], body["metric"]) for body in bodies} == {
        (scope, metric)
        for scope in ("campaign", "provider", "day")
        for metric in ("delivery_rate", "opt_out_rate", "complaint_rate")
    }
    for headers, body in receiver.posts:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Tidings-Signature"] == expected
    provider = next(
        b for b in bodies if b["scope"] == "provider" and b["metric"] == "delivery_rate"
    )
    assert provider["text"] == (
        f"provider ali on {SENT.date()}: delivery rate 95.00% is below the 98.00% threshold"
    )
    with session_scope(engine) as session:
        stored = stored_breaches(db_session=session, since=SENT.date())
    assert len(stored) == 9 and all(item["posted_at"] for item in stored)


def test_a_failed_post_is_tried_again_at_the_next_check(engine: Engine, receiver: Receiver) -> None:
    build(engine)
    receiver.statuses = [503]
    settings = _settings(health_webhook_url=receiver.url)
    with session_scope(engine) as session:
        assert len(check_health(db_session=session, days=7, now=NOW, settings=settings)) == 9
    assert receiver.posts == []
    with session_scope(engine) as session:
        waiting = session.scalar(
            select(func.count()).select_from(HealthBreach).where(HealthBreach.posted_at.is_(None))
        )
    assert waiting == 9
    with session_scope(engine) as session:
        assert check_health(db_session=session, days=7, now=NOW, settings=settings) == []
    assert len(receiver.bodies()) == 9
    assert "X-Tidings-Signature" not in receiver.posts[0][0]


def test_days_must_be_positive(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(HealthInputError, match="at least 1"):
        health_rows(db_session=session, days=0, now=NOW, settings=_settings())


def test_the_workers_housekeeping_checks_health(
    engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    build(engine)
    settings = _settings(health_webhook_url=receiver.url, simulator_inbox=tmp_path / "inbox.jsonl")
    with clock.frozen(SENT + timedelta(hours=3)):
        asyncio.run(Worker(engine, settings=settings).run(once=True))
    with session_scope(engine) as session:
        stored = stored_breaches(db_session=session, since=SENT.date())
    assert len(stored) == 9 and all(item["posted_at"] for item in stored)
    assert len(receiver.bodies()) == 9


def test_a_reply_rate_above_the_healthy_range_is_a_note_saying_so() -> None:
    row = {
        "settled": 1000,
        "delivered": 1000,
        "replied": 120,
        "opted_out": 0,
        "complained": 0,
        "delivery_rate": 1.0,
        "opt_out_rate": 0.0,
        "complaint_rate": 0.0,
        "reply_rate": 0.12,
    }
    [note] = findings(row, Thresholds.from_settings(_settings()))
    assert (note["kind"], note["threshold"]) == ("note", 0.08)
    assert note["text"] == (
        "reply rate 12.0% is above the healthy 5%-8%: check for confusion or complaints"
    )
