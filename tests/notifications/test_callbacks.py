"""Status callbacks: each change of an API message's state is posted, signed, to the
integrator's URL, and retried until it is taken; nothing is lost between passes."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stamina
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tidings import clock
from tidings.config import Settings
from tidings.notifications import callbacks

from .conftest import NOW, run_worker


class Receiver:
    """A real HTTP server on the loopback that refuses the first `failures` posts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[bytes, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(503)
                else:
                    receiver.posts.append((body, self.headers[callbacks.SIGNATURE_HEADER]))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sms-status"

    def statuses(self) -> list[str]:
        return [json.loads(body)["status"] for body, _ in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(failures=4)
    thread = threading.Thread(target=made.server.serve_forever, daemon=True)
    thread.start()
    yield made
    made.server.shutdown()


@pytest.fixture(autouse=True)
def no_waits() -> Iterator[None]:
    # The quick tries within one pass still happen (3 of them), without their real waits.
    with stamina.set_testing(True, attempts=3):
        yield


def test_status_changes_are_posted_signed_and_retried_until_taken(
    engine: Engine, client: TestClient, settings: Settings, member: int, receiver: Receiver
) -> None:
    body = {
        "idempotency_key": "delivery-77",
        "member_id": member,
        "text": "您的订单已发货。",
        "callback_url": receiver.url,
    }
    with clock.frozen(NOW):
        message = client.post("/api/v1/messages", json=body).json()["id"]
        # Three quick tries refused: the post waits for a later pass.
        first = callbacks.run_pass(engine, settings=settings, now=NOW)
    assert (first["retrying"], receiver.posts) == (1, [])
    # A pass before the wait is over posts nothing; one after it posts (the fourth refusal,
    # then the fifth try is taken).
    callbacks.run_pass(engine, settings=settings, now=NOW + timedelta(seconds=1))
    assert receiver.posts == []
    later = callbacks.run_pass(engine, settings=settings, now=NOW + timedelta(seconds=10))
    assert later["delivered"] == 1
    assert receiver.statuses() == ["queued"]

    run_worker(engine, settings)
    callbacks.run_pass(engine, settings=settings, now=NOW + timedelta(minutes=1))
    callbacks.run_pass(engine, settings=settings, now=NOW + timedelta(minutes=2))
    assert receiver.statuses()[-1] == "delivered"
    assert len(receiver.statuses()) == len(set(receiver.statuses()))
    for raw, signature in receiver.posts:
        expected = hmac.new(b"cb-secret", raw, hashlib.sha256).hexdigest()
        assert signature == f"sha256={expected}"
        assert json.loads(raw)["message_id"] == message


def test_a_callback_is_given_up_after_its_attempts(
    engine: Engine, client: TestClient, settings: Settings, member: int, receiver: Receiver
) -> None:
    receiver.failures = 1000
    few = settings.model_copy(update={"callback_max_attempts": 2})
    body = {
        "idempotency_key": "k",
        "member_id": member,
        "text": "到店提醒",
        "callback_url": receiver.url,
    }
    with clock.frozen(NOW):
        client.post("/api/v1/messages", json=body)
    callbacks.run_pass(engine, settings=few, now=NOW)
    callbacks.run_pass(engine, settings=few, now=NOW + timedelta(hours=1))
    with engine.connect() as connection:
        state, attempts = connection.execute(
            text("SELECT state, attempts FROM callback_deliveries")
        ).one()
    assert (state, attempts) == ("failed", 2)
