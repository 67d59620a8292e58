"""How each HTTP provider reads a refusal: a closed port is ProviderUnavailable (nothing was
handed over), 429 and 5xx and the provider's throttle codes are 'try again later', a bad
number fails for good with the provider's code. Also Twilio's published signature vectors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from loopback_providers.servers import LoopbackServer, free_port

from tidings.config import Settings
from tidings.providers.base import Outcome, OutgoingMessage, ProviderUnavailable, get_provider
from tidings.providers.twilio import twilio_signature

MESSAGE = OutgoingMessage(1, "+8613800000001", "【好邻居】会员日到店领好礼")
TEMPLATES = {"到店礼": {"code": "T1", "text": "会员日到店领好礼"}}


def accounts(url: str) -> dict[str, dict[str, Any]]:
    return {
        "aliyun": {
            "type": "aliyun",
            "access_key_id": "k",
            "access_key_secret": "s",
            "sign_name": "好邻居",
            "endpoint": url + "/",
            "templates": TEMPLATES,
        },
        "tencent": {
            "type": "tencent",
            "secret_id": "k",
            "secret_key": "s",
            "sdk_app_id": "1",
            "sign_name": "好邻居",
            "endpoint": url + "/",
            "templates": TEMPLATES,
        },
        "twilio": {
            "type": "twilio",
            "account_sid": "AC1",
            "auth_token": "t",
            "from_number": "+15005550006",
            "api_base": url,
        },
        "http": {
            "type": "http",
            "url": url + "/send",
            "body": {"to": "{phone}"},
            "response": {
                "id": "id",
                "status": "code",
                "accepted": ["0"],
                "throttled": ["SLOW"],
                "permanent": ["BAD_NUMBER"],
            },
        },
    }


class Canned:
    """A loopback server that answers every request with the same status and body."""

    def __init__(self) -> None:
        self.status, self.body, self.headers = 200, {}, {}  # type: ignore[var-annotated]
        self.server = LoopbackServer(self.handle)

    def handle(self, *_: Any) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", **self.headers}
        return self.status, headers, json.dumps(self.body).encode()


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    with server.server:
        yield server


def send(kind: str, url: str) -> Any:
    provider = get_provider(kind, Settings(provider_accounts=accounts(url)))
    [result] = asyncio.run(provider.send_batch([MESSAGE]))
    return result


@pytest.mark.parametrize("kind", ["aliyun", "tencent", "twilio", "http"])
def test_a_closed_port_means_nothing_was_handed_over(kind: str) -> None:
    with pytest.raises(ProviderUnavailable):
        send(kind, f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("kind", ["aliyun", "tencent", "twilio", "http"])
def test_a_server_error_or_429_is_tried_again_later(kind: str, canned: Canned) -> None:
    canned.status, canned.headers = 503, {"Retry-After": "7"}
    result = send(kind, canned.server.url)
    assert (result.outcome, result.retry_after, result.error_code) == (Outcome.RETRY, 7, "http_503")
    canned.status = 429
    assert send(kind, canned.server.url).outcome is Outcome.RETRY


@pytest.mark.parametrize(
    ("kind", "status", "body", "code"),
    [
        ("aliyun", 400, {"Code": "Throttling.User", "Message": "flow control"}, "Throttling.User"),
        (
            "tencent",
            200,
            {"Response": {"Error": {"Code": "RequestLimitExceeded"}}},
            "RequestLimitExceeded",
        ),
        ("twilio", 429, {"code": 20429, "message": "Too Many Requests"}, "20429"),
        ("http", 200, {"code": "SLOW"}, "SLOW"),
    ],
)
def test_a_throttle_code_is_tried_again_later(
    kind: str, status: int, body: dict[str, Any], code: str, canned: Canned
) -> None:
    canned.status, canned.body = status, body
    result = send(kind, canned.server.url)
    assert (result.outcome, result.error_code) == (Outcome.RETRY, code)
    assert result.retry_after >= 1


@pytest.mark.parametrize(
    ("kind", "status", "body", "code"),
    [
        ("aliyun", 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL"}, "isv.MOBILE_NUMBER_ILLEGAL"),
        (
            "tencent",
            200,
            {
                "Response": {
                    "SendStatusSet": [
                        {
                            "PhoneNumber": MESSAGE.phone,
                            "SerialNo": "",
                            "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                        }
                    ]
                }
            },
            "InvalidParameterValue.IncorrectPhoneNumber",
        ),
        ("twilio", 400, {"code": 21211, "message": "not a valid phone number"}, "21211"),
        ("http", 200, {"code": "BAD_NUMBER"}, "BAD_NUMBER"),
    ],
)
def test_a_bad_number_fails_for_good_with_the_providers_code(
    kind: str, status: int, body: dict[str, Any], code: str, canned: Canned
) -> None:
    canned.status, canned.body = status, body
    result = send(kind, canned.server.url)
    assert (result.outcome, result.error_code, result.permanent) == (Outcome.FAILED, code, True)


def test_an_unknown_refusal_fails_but_may_be_tried_again(canned: Canned) -> None:
    canned.status, canned.body = 200, {"Code": "isv.AMOUNT_NOT_ENOUGH"}
    result = send("aliyun", canned.server.url)
    assert (result.outcome, result.error_code, result.permanent) == (
        Outcome.FAILED,
        "isv.AMOUNT_NOT_ENOUGH",
        False,
    )


def test_twilio_signatures_match_twilios_published_vectors() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]
    assert twilio_signature(url, repeated, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
