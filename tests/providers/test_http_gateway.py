"""The generic HTTP provider, configured for a loopback aggregator with its own JSON API:
batches, answers per message, a 503 and throttling retried, a bad number failed with the
aggregator's code, and HMAC-signed receipt and reply pushes taken at /hooks/http/..."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from loopback_providers.gateway import FakeGateway
from loopback_providers.outbox import outcomes, queue, receipt_count, replies, worker_settings
from loopback_providers.servers import HooksServer
from sqlalchemy import Engine

from tidings.config import Settings
from tidings.dispatch import outcomes as dispatch_outcomes
from tidings.dispatch.worker import Worker
from tidings.providers.base import get_provider
from tidings.providers.http import HttpProvider

API_KEY = "gateway-api-key-never-shown"
CALLBACK_SECRET = "gateway-callback-secret"


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    with FakeGateway(api_key=API_KEY, callback_secret=CALLBACK_SECRET) as server:
        yield server


def account(fake: FakeGateway) -> dict[str, object]:
    return {
        "type": "http",
        "url": fake.url + "/sms/batch",
        "headers": {"X-Api-Key": "{secret}"},
        "secret": API_KEY,
        "phone_format": "national",
        "body": {"mobile": "{phone}", "content": "{text}", "ref": "{id}"},
        "batch": {"key": "messages", "size": 25, "extra": {"account": "shop"}},
        "response": {
            "id": "msgid",
            "status": "status",
            "accepted": ["0"],
            "throttled": ["THROTTLED"],
            "permanent": ["BAD_NUMBER"],
            "error": "error",
            "results": "results",
        },
        "receipts": {
            "items": "reports",
            "id": "msgid",
            "status": "stat",
            "delivered": ["DELIVRD"],
            "error": "err",
            "time": "done",
        },
        "replies": {"items": "mo", "phone": "from", "text": "text", "id": "moid", "time": "time"},
        "callback_hmac_header": "X-Signature",
        "callback_secret": CALLBACK_SECRET,
        "acknowledgement": "OK",
    }


def test_a_campaign_ends_as_the_server_decided(
    engine: Engine, fake: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch_outcomes, "BACKOFF_BASE", 0.05)
    settings = worker_settings({"gw": account(fake)}, "gw")
    phones = [f"+861380000{n:04d}" for n in range(60)]
    ids = queue(
        engine, "gw", {phone: f"【好邻居】会员日 {phone[-2:]} 拒收请回复R" for phone in phones}
    )
    with HooksServer(engine, settings) as hooks:
        fake.callback_url = f"{hooks.url}/hooks/http/gw"
        asyncio.run(Worker(engine, settings=settings).run(once=True))
        answers = fake.poster.drain()

    expected = {
        phone: {"7": ("failed", "BAD_NUMBER"), "9": ("failed", "E:402")}.get(
            phone[-1], ("delivered", None)
        )
        for phone in phones
    }
    assert outcomes(engine) == expected
    assert max(fake.batches) == 25  # batches as configured, after the first met a 503
    # Each handset got the campaign once; those that replied R also got one confirmation.
    campaign = {
        phone: [t for t in texts if "会员日" in t] for phone, texts in fake.handsets.items()
    }
    assert all(len(texts) == 1 for texts in campaign.values())
    assert all(len(texts) <= 2 for texts in fake.handsets.values())
    repliers = sorted(p for p in phones if p[-1] == "5")
    # A receipt for each campaign message the gateway took, and for each confirmation.
    assert receipt_count(engine) == sum(1 for p in phones if p[-1] != "7") + len(repliers)
    stored = replies(engine)
    to_campaign = {row[0]: (row[1], row[3]) for row in stored if row[3] in ids.values()}
    assert to_campaign == {p: ("R", ids[p]) for p in repliers}
    assert {(a.status_code, a.text) for a in answers} == {(200, "OK")}


def test_the_provider_never_shows_its_secrets(fake: FakeGateway) -> None:
    provider = get_provider("gw", Settings(provider_accounts={"gw": account(fake)}))
    assert isinstance(provider, HttpProvider)
    shown = f"{provider!r} {provider.account!r} {provider.account} {vars(provider)}"
    assert API_KEY not in shown and CALLBACK_SECRET not in shown
