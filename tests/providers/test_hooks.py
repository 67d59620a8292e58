"""/hooks/{type}/{account}: a callback that is unsigned, wrongly signed or unreadable gets a
4xx and changes nothing; one sent twice changes nothing more; a reply from a number that is
no member's is kept without a member."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from loopback_providers.outbox import outcomes, queue, receipt_count, replies
from loopback_providers.twilio import signature_for
from sqlalchemy import Engine, text

from tidings.app import create_app
from tidings.config import Settings
from tidings.inbound.hooks import RedactCallbackTokens

TOKEN = "hook-token"
TWILIO_TOKEN = "twilio-token"
GATEWAY_SECRET = "gateway-secret"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "ali": {
        "type": "aliyun",
        "access_key_id": "LTAI",
        "access_key_secret": "s",
        "sign_name": "好邻居",
        "callback_token": TOKEN,
    },
    "tx": {
        "type": "tencent",
        "secret_id": "AKID",
        "secret_key": "s",
        "sdk_app_id": "1400006666",
        "sign_name": "好邻居",
        "callback_token": TOKEN,
    },
    "us": {
        "type": "twilio",
        "account_sid": "AC1",
        "auth_token": TWILIO_TOKEN,
        "from_number": "+15005550006",
    },
    "gw": {
        "type": "http",
        "url": "http://127.0.0.1:9/send",
        "body": {"to": "{phone}"},
        "callback_hmac_header": "X-Signature",
        "callback_secret": GATEWAY_SECRET,
    },
}
ALIYUN_REPORT = [
    {
        "phone_number": "13800000001",
        "send_time": "2026-11-23 10:00:00",
        "report_time": "2026-11-23 10:00:05",
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": "900619746936498440^0",
        "out_id": "1",
    }
]
ALIYUN_UP = [
    {
        "phone_number": "13800000001",
        "content": "退订",
        "send_time": "2026-11-23 10:05:00",
        "dest_code": "1234",
        "sequence_id": "1234567890",
    }
]


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine)
    app.state.settings = Settings(provider_accounts=ACCOUNTS)
    with TestClient(app) as test_client:
        yield test_client


def submitted(engine: Engine, provider: str, phone: str, provider_message_id: str) -> None:
    """A message the provider took, awaiting its receipt."""
    queue(engine, provider, {phone: "【好邻居】会员日到店领好礼"})
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE messages SET state = 'submitted', provider_message_id = :pmid,"
                " submitted_at = CURRENT_TIMESTAMP WHERE phone = :phone"
            ),
            {"pmid": provider_message_id, "phone": phone},
        )


def nothing_stored(engine: Engine) -> bool:
    return receipt_count(engine) == 0 and replies(engine) == []


def test_aliyun_needs_its_token_and_acknowledges_a_repeat_harmlessly(
    client: TestClient, engine: Engine
) -> None:
    submitted(engine, "ali", "+8613800000001", "900619746936498440^0:13800000001")
    url = "/hooks/aliyun/ali"
    assert client.post(url, json=ALIYUN_REPORT).status_code == 401
    assert client.post(f"{url}?token=wrong", json=ALIYUN_REPORT).status_code == 401
    bad = client.post(f"{url}?token={TOKEN}", content=b"[{not json")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert client.post(f"{url}?token={TOKEN}", json=[{"phone_number": "1"}]).status_code == 400
    assert nothing_stored(engine)
    assert outcomes(engine) == {"+8613800000001": ("submitted", None)}
    for _ in range(2):
        answer = client.post(f"{url}?token={TOKEN}", json=ALIYUN_REPORT)
        assert (answer.status_code, answer.json()) == (200, {"code": 0, "msg": "成功"})
        assert client.post(f"{url}?token={TOKEN}", json=ALIYUN_UP).json()["code"] == 0
    with engine.connect() as connection:
        sent = connection.execute(text("SELECT kind, state FROM messages ORDER BY id")).all()
    # The campaign message delivered, and the opt-out confirmed once, however often pushed.
    assert [row.state for row in sent] == ["delivered", "queued"]
    assert sent[1].kind != "marketing"
    assert [row[:2] for row in replies(engine)] == [("+8613800000001", "退订")]


def test_tencent_reads_a_status_batch_and_keeps_a_strangers_reply(
    client: TestClient, engine: Engine
) -> None:
    submitted(engine, "tx", "+8613800000002", "2433:1")
    status = [
        {
            "user_receive_time": "2026-11-23 10:00:05",
            "nationcode": "86",
            "mobile": "13800000002",
            "report_status": "FAIL",
            "errmsg": "MK:0012",
            "description": "用户停机",
            "sid": "2433:1",
        }
    ]
    reply = {
        "extend": "",
        "mobile": "13911112222",
        "nationcode": "86",
        "sign": "好邻居",
        "text": "什么时候结束？",
        "time": 1795500000,
    }
    url = f"/hooks/tencent/tx?token={TOKEN}"
    assert client.post("/hooks/tencent/tx", json=status).status_code == 401
    assert client.post(url, json=[{**status[0], "report_status": "MAYBE"}]).status_code == 400
    assert client.post(url, json={**reply, "time": "yesterday"}).status_code == 400
    assert nothing_stored(engine)
    for _ in range(2):
        assert client.post(url, json=status).json() == {"result": 0, "errmsg": "OK"}
        assert client.post(url, json=reply).json() == {"result": 0, "errmsg": "OK"}
    assert outcomes(engine) == {"+8613800000002": ("failed", "MK:0012")}
    assert replies(engine) == [("+8613911112222", "什么时候结束？", None, None)]


def _twilio_post(client: TestClient, params: dict[str, str], signature: str | None) -> Any:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    return client.post("/hooks/twilio/us", data=params, headers=headers)


def test_twilio_checks_the_signature_of_url_and_parameters(
    client: TestClient, engine: Engine
) -> None:
    submitted(engine, "us", "+14155550001", "SM1")
    url = "http://testserver/hooks/twilio/us"
    status = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+14155550001"}
    inbound = {"MessageSid": "SM9", "From": "+14155550001", "To": "+15005550006", "Body": "STOP"}
    assert _twilio_post(client, status, None).status_code == 401
    forged = signature_for(url, {**status, "MessageStatus": "failed"}, TWILIO_TOKEN)
    assert _twilio_post(client, status, forged).status_code == 401
    assert _twilio_post(client, inbound, signature_for(url, inbound, "other")).status_code == 401
    assert nothing_stored(engine)
    for _ in range(2):
        answer = _twilio_post(client, status, signature_for(url, status, TWILIO_TOKEN))
        assert answer.status_code == 200 and "<Response>" in answer.text
        assert _twilio_post(client, inbound, signature_for(url, inbound, TWILIO_TOKEN)).is_success
    assert outcomes(engine) == {"+14155550001": ("delivered", None)}
    assert [row[:2] for row in replies(engine)] == [("+14155550001", "STOP")]


def test_the_generic_gateway_checks_its_hmac(client: TestClient, engine: Engine) -> None:
    submitted(engine, "gw", "+8613800000003", "gw-1")
    body = json.dumps(
        [{"id": "gw-1", "status": "DELIVRD"}, {"id": "mo-1", "from": "13800000003", "text": "好的"}]
    ).encode()
    good = hmac.new(GATEWAY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    url = "/hooks/http/gw"
    assert client.post(url, content=body).status_code == 401
    assert client.post(url, content=body, headers={"X-Signature": "0" * 64}).status_code == 401
    garbage = b"{]"
    signed = hmac.new(GATEWAY_SECRET.encode(), garbage, hashlib.sha256).hexdigest()
    assert client.post(url, content=garbage, headers={"X-Signature": signed}).status_code == 400
    assert nothing_stored(engine)
    for _ in range(2):
        assert client.post(url, content=body, headers={"X-Signature": good}).text == '{"ok": true}'
    assert outcomes(engine) == {"+8613800000003": ("delivered", None)}
    assert [row[:2] for row in replies(engine)] == [("+8613800000003", "好的")]


def test_an_unknown_account_or_a_type_mismatch_is_not_found(client: TestClient) -> None:
    assert client.post("/hooks/aliyun/nobody", json=ALIYUN_REPORT).status_code == 404
    assert client.post(f"/hooks/tencent/ali?token={TOKEN}", json=ALIYUN_REPORT).status_code == 404


def test_access_logs_mask_the_callback_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/hooks/aliyun/ali?token={TOKEN}&x=1", "1.1", 200),
        None,
    )
    assert RedactCallbackTokens().filter(record)
    assert TOKEN not in record.getMessage() and "token=***&x=1" in record.getMessage()
