"""Tencent Cloud SMS end to end against a loopback API that checks TC3-HMAC-SHA256: every
message ends as the server decided, status callbacks settle them, reply callbacks are stored
and each is acknowledged with {"result": 0, "errmsg": "OK"}."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from loopback_providers.outbox import outcomes, queue, receipt_count, replies, worker_settings
from loopback_providers.servers import HooksServer
from loopback_providers.tencent import FakeTencent
from sqlalchemy import Engine

from tidings.config import Settings
from tidings.dispatch import outcomes as dispatch_outcomes
from tidings.dispatch.worker import Worker
from tidings.providers.base import get_provider
from tidings.providers.tencent import TencentProvider

SECRET_KEY = "tencent-secret-key-never-shown"
TOKEN = "tencent-callback-token"
APPROVED = {"1110": "{1}您好，会员日全场{2}折，拒收请回复R", "1111": "周末到店领好礼，拒收请回复R"}


@pytest.fixture
def fake() -> Iterator[FakeTencent]:
    with FakeTencent(
        secret_id="AKID-test", secret_key=SECRET_KEY, app_id="1400006666", templates=APPROVED
    ) as server:
        yield server


def account(fake: FakeTencent) -> dict[str, object]:
    return {
        "type": "tencent",
        "secret_id": "AKID-test",
        "secret_key": SECRET_KEY,
        "sdk_app_id": "1400006666",
        "sign_name": "好邻居",
        "endpoint": fake.url + "/",
        "callback_token": TOKEN,
        "templates": {
            "会员日": {"code": "1110", "text": APPROVED["1110"]},
            "周末礼": {"code": "1111", "text": APPROVED["1111"]},
        },
    }


def test_a_campaign_ends_as_the_server_decided(
    engine: Engine, fake: FakeTencent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch_outcomes, "BACKOFF_BASE", 0.05)
    settings = worker_settings({"tx": account(fake)}, "tx")
    personal = {
        f"+861380000{n:04d}": f"【好邻居】会员{n}您好，会员日全场{8 + n % 2}折，拒收请回复R"
        for n in range(20)
    }
    same = {f"+861390000{n:04d}": "【好邻居】周末到店领好礼，拒收请回复R" for n in range(10)}
    stray = {"+8613700000001": "【好邻居】没有报备的文字"}
    ids = queue(engine, "tx", {**personal, **same, **stray})
    with HooksServer(engine, settings) as hooks:
        fake.callback_url = f"{hooks.url}/hooks/tencent/tx?token={TOKEN}"
        asyncio.run(Worker(engine, settings=settings).run(once=True))
        answers = fake.poster.drain()

    expected = {"+8613700000001": ("failed", "template_not_approved")}
    for phone in [*personal, *same]:
        expected[phone] = {
            "7": ("failed", "InvalidParameterValue.IncorrectPhoneNumber"),
            "9": ("failed", "MK:0012"),
        }.get(phone[-1], ("delivered", None))
    assert outcomes(engine) == expected
    assert fake.handsets["+8613800000003"] == ["【好邻居】会员3您好，会员日全场9折，拒收请回复R"]
    assert all(len(texts) == 1 for texts in fake.handsets.values())
    # One request carried the shared text; each request names our message ids.
    shared = sorted(ids[p] for p in same)
    assert ",".join(map(str, shared)) in fake.contexts
    assert str(ids["+8613800000003"]) in fake.contexts
    assert receipt_count(engine) == sum(1 for p in [*personal, *same] if p[-1] != "7")
    stored = replies(engine)
    repliers = sorted(p for p in [*personal, *same] if p[-1] == "5")
    assert sorted(row[0] for row in stored) == repliers
    assert all(row[1] == "退订" for row in stored)
    assert {row[0]: row[3] for row in stored} == {p: ids[p] for p in repliers}
    assert {(a.status_code, a.text) for a in answers} == {(200, '{"result": 0, "errmsg": "OK"}')}


def test_a_wrong_key_is_refused_by_the_signature_check(engine: Engine, fake: FakeTencent) -> None:
    settings = worker_settings({"tx": {**account(fake), "secret_key": "not-the-key"}}, "tx")
    queue(engine, "tx", {"+8613800000001": "【好邻居】周末到店领好礼，拒收请回复R"})
    settings.dispatch_max_attempts = 1
    asyncio.run(Worker(engine, settings=settings).run(once=True))
    assert outcomes(engine) == {
        "+8613800000001": ("failed", "retries_exhausted:AuthFailure.SignatureFailure")
    }
    assert fake.handsets == {}


def test_the_provider_never_shows_its_secrets(fake: FakeTencent) -> None:
    provider = get_provider("tx", Settings(provider_accounts={"tx": account(fake)}))
    assert isinstance(provider, TencentProvider)
    shown = f"{provider!r} {provider.account!r} {provider.account} {vars(provider)}"
    assert SECRET_KEY not in shown and TOKEN not in shown
