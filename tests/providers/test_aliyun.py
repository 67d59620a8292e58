"""Aliyun SMS end to end against a loopback Dysms API that checks the RPC signature: a
campaign's messages end delivered or failed as the server decided, its SmsReport receipts
settle them and its SmsUp replies are stored, each callback acknowledged as documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from loopback_providers.aliyun import FakeAliyun
from loopback_providers.outbox import outcomes, queue, receipt_count, replies, worker_settings
from loopback_providers.servers import HooksServer
from sqlalchemy import Engine

from tidings.config import Settings
from tidings.dispatch import outcomes as dispatch_outcomes
from tidings.dispatch.worker import Worker
from tidings.providers.aliyun import AliyunProvider
from tidings.providers.base import get_provider

SECRET = "aliyun-secret-never-shown"
TOKEN = "callback-token-never-shown"
APPROVED = {
    "SMS_1001": "${name}您好，会员日全场${discount}折，拒收请回复R",
    "SMS_1002": "会员日到店领好礼，拒收请回复R",
}


@pytest.fixture
def fake() -> Iterator[FakeAliyun]:
    with FakeAliyun(key_id="LTAI-test", secret=SECRET, templates=APPROVED) as server:
        yield server


def account(fake: FakeAliyun, **extra: object) -> dict[str, object]:
    return {
        "type": "aliyun",
        "access_key_id": "LTAI-test",
        "access_key_secret": SECRET,
        "sign_name": "好邻居",
        "endpoint": fake.url + "/",
        "callback_token": TOKEN,
        "templates": {
            "会员日": {"code": "SMS_1001", "text": APPROVED["SMS_1001"]},
            "到店礼": {"code": "SMS_1002", "text": APPROVED["SMS_1002"]},
        },
        **extra,
    }


def run_worker(engine: Engine, settings: Settings) -> dict[str, int]:
    return asyncio.run(Worker(engine, settings=settings).run(once=True)).as_dict()


def test_a_campaign_ends_as_the_server_decided(
    engine: Engine, fake: FakeAliyun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch_outcomes, "BACKOFF_BASE", 0.05)
    settings = worker_settings({"aliyun-main": account(fake)}, "aliyun-main")
    personal = {
        f"+861380000{n:04d}": f"【好邻居】会员{n}您好，会员日全场{8 + n % 2}折，拒收请回复R"
        for n in range(30)
    }
    same = {f"+861390000{n:04d}": "【好邻居】会员日到店领好礼，拒收请回复R" for n in range(12)}
    stray = {"+8613700000001": "【好邻居】这段文字没有报备过"}
    ids = queue(engine, "aliyun-main", {**personal, **same, **stray})
    with HooksServer(engine, settings) as hooks:
        fake.callback_url = f"{hooks.url}/hooks/aliyun/aliyun-main?token={TOKEN}"
        report = run_worker(engine, settings)
        answers = fake.poster.drain()

    expected = {}
    for phone in [*personal, *same]:
        kind = phone[-1]
        if kind == "7":
            expected[phone] = ("failed", "isv.MOBILE_NUMBER_ILLEGAL")
        elif kind == "9":
            expected[phone] = ("failed", "MK:0012")
        else:
            expected[phone] = ("delivered", None)
    expected["+8613700000001"] = ("failed", "template_not_approved")
    assert outcomes(engine) == expected
    # A number refused in a batch made each message go alone, OutId naming it.
    assert fake.out_ids and all(
        out_id == str(ids[f"+86{number}"]) for number, out_id in fake.out_ids.items()
    )
    assert fake.handsets["13800000000"] == ["【好邻居】会员0您好，会员日全场8折，拒收请回复R"]
    assert all(len(texts) == 1 for texts in fake.handsets.values())
    delivered_or_undelivered = [p for p in [*personal, *same] if p[-1] != "7"]
    assert receipt_count(engine) == len(delivered_or_undelivered)
    assert report["receipts"] == 0  # receipts came by callback, not by polling
    stored = replies(engine)
    repliers = sorted(p for p in [*personal, *same] if p[-1] == "5")
    assert sorted(row[0] for row in stored) == repliers
    assert all(row[1] == "TD" and row[2] is not None for row in stored)
    assert {row[0]: row[3] for row in stored} == {p: ids[p] for p in repliers}
    assert {a.status_code for a in answers} == {200}
    assert {a.text for a in answers} == {'{"code": 0, "msg": "成功"}'}


def test_one_text_goes_by_sendsms_and_personal_texts_by_sendbatchsms(
    engine: Engine, fake: FakeAliyun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch_outcomes, "BACKOFF_BASE", 0.05)
    settings = worker_settings({"aliyun-main": account(fake)}, "aliyun-main")
    clean = [n for n in range(40) if n % 10 not in (7, 8)]
    personal = {
        f"+861380000{n:04d}": f"【好邻居】会员{n}您好，会员日全场8折，拒收请回复R" for n in clean
    }
    same = {f"+861390000{n:04d}": "【好邻居】会员日到店领好礼，拒收请回复R" for n in clean}
    queue(engine, "aliyun-main", {**personal, **same})
    with HooksServer(engine, settings) as hooks:
        fake.callback_url = f"{hooks.url}/hooks/aliyun/aliyun-main?token={TOKEN}"
        run_worker(engine, settings)
        fake.poster.drain()
    assert sorted(fake.requests) == [("SendBatchSms", len(clean)), ("SendSms", len(clean))]
    assert set(outcomes(engine).values()) == {("delivered", None), ("failed", "MK:0012")}


def test_the_provider_never_shows_its_secrets(fake: FakeAliyun) -> None:
    settings = Settings(provider_accounts={"aliyun-main": account(fake)})
    provider = get_provider("aliyun-main", settings)
    assert isinstance(provider, AliyunProvider)
    shown = f"{provider!r} {provider.account!r} {provider.account} {vars(provider)}"
    assert SECRET not in shown and TOKEN not in shown
