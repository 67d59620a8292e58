"""Twilio end to end against a loopback Messages API: Basic auth, one request per message,
StatusCallback receipts and inbound replies checked by X-Twilio-Signature."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from loopback_providers.outbox import outcomes, queue, receipt_count, replies, worker_settings
from loopback_providers.servers import HooksServer
from loopback_providers.twilio import FakeTwilio
from sqlalchemy import Engine

from tidings.config import Settings
from tidings.dispatch import outcomes as dispatch_outcomes
from tidings.dispatch.worker import Worker
from tidings.providers.base import get_provider
from tidings.providers.twilio import TwilioProvider
from tidings.providers.webhooks import ProviderAccountError

SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-token-never-shown"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=SID, auth_token=AUTH_TOKEN) as server:
        yield server


def account(fake: FakeTwilio, public_url: str | None = None) -> dict[str, object]:
    return {
        "type": "twilio",
        "account_sid": SID,
        "auth_token": AUTH_TOKEN,
        "messaging_service_sid": "MG" + "1" * 32,
        "api_base": fake.url,
        "public_url": public_url,
    }


def test_a_campaign_ends_as_the_server_decided(
    engine: Engine,
    fake: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(dispatch_outcomes, "BACKOFF_BASE", 0.05)
    phones = [f"+1415555{n:04d}" for n in range(30)]
    ids = queue(engine, "us", {phone: f"Member day: 20% off, {phone[-2:]}" for phone in phones})
    hooks_settings = worker_settings({"us": account(fake)}, "us")
    with HooksServer(engine, hooks_settings) as hooks:
        settings = worker_settings({"us": account(fake, public_url=hooks.url)}, "us")
        hooks_settings.provider_accounts = settings.provider_accounts
        fake.inbound_url = f"{hooks.url}/hooks/twilio/us"
        asyncio.run(Worker(engine, settings=settings).run(once=True))
        answers = fake.poster.drain()

    expected = {
        phone: {"7": ("failed", "21211"), "9": ("failed", "30003")}.get(
            phone[-1], ("delivered", None)
        )
        for phone in phones
    }
    assert outcomes(engine) == expected
    assert all(len(texts) == 1 for texts in fake.handsets.values())
    assert fake.senders == {"MG" + "1" * 32}
    assert receipt_count(engine) == sum(1 for p in phones if p[-1] != "7")
    repliers = sorted(p for p in phones if p[-1] == "5")
    stored = replies(engine)
    assert sorted(row[0] for row in stored) == repliers
    assert {row[0]: (row[1], row[3]) for row in stored} == {p: ("STOP", ids[p]) for p in repliers}
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["content-type"].split(";")[0] for a in answers} == {"text/xml"}
    assert AUTH_TOKEN not in caplog.text


def test_an_account_needs_a_sender_and_never_echoes_its_token() -> None:
    settings = Settings(
        provider_accounts={"us": {"type": "twilio", "account_sid": SID, "auth_token": AUTH_TOKEN}}
    )
    with pytest.raises(ProviderAccountError, match="messaging_service_sid or from_number") as error:
        get_provider("us", settings)
    assert AUTH_TOKEN not in str(error.value)


def test_the_provider_never_shows_its_secrets(fake: FakeTwilio) -> None:
    provider = get_provider("us", Settings(provider_accounts={"us": account(fake)}))
    assert isinstance(provider, TwilioProvider)
    shown = f"{provider!r} {provider.account!r} {provider.account} {vars(provider)}"
    assert AUTH_TOKEN not in shown
