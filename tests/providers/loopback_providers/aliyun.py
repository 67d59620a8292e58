"""A loopback Dysms API (2017-05-25) as Aliyun documents it: form-encoded RPC requests
signed with HMAC-SHA1 over the canonicalised query, SendSms and SendBatchSms, and the
SmsReport and SmsUp HTTP batch pushes back to the callback URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from .servers import CallbackPoster, LoopbackServer, fate

CHINA = timedelta(hours=8)


def special_url_encode(value: str) -> str:
    """The encoding of Aliyun's signature documentation (its Java sample): URL-encode in
    UTF-8, then '+' -> %20, '*' -> %2A, %7E -> '~'."""
    encoded = quote_plus(value, encoding="utf-8")
    return encoded.replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def expected_signature(params: dict[str, str], secret: str) -> str:
    query = "&".join(
        f"{special_url_encode(k)}={special_url_encode(params[k])}" for k in sorted(params)
    )
    to_sign = "POST&" + special_url_encode("/") + "&" + special_url_encode(query)
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


class FakeAliyun(LoopbackServer):
    """Aliyun SMS on loopback: checks each request's signature, sends approved templates."""

    def __init__(self, *, key_id: str, secret: str, templates: dict[str, str]) -> None:
        super().__init__(self.handle)
        self.key_id, self.secret, self.templates = key_id, secret, templates
        self.callback_url: str | None = None  # SmsReport and SmsUp pushes go here
        self.poster = CallbackPoster()
        self.handsets: dict[str, list[str]] = {}  # number -> texts received
        self.requests: list[tuple[str, int]] = []  # (action, numbers) of accepted requests
        self.out_ids: dict[str, str] = {}  # number -> OutId of a one-number request
        self._nonces: set[str] = set()
        self._throttled: set[str] = set()
        self._biz = itertools.count(900619746936498440)
        self._lock = threading.Lock()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        refusal = self._check(method, params)
        if refusal is not None:
            return _answer(400, {"Code": refusal, "Message": refusal})
        if params["Action"] == "SendSms":
            numbers = params["PhoneNumbers"].split(",")
            signs = [params["SignName"]] * len(numbers)
            variables = [json.loads(params.get("TemplateParam") or "{}")] * len(numbers)
        elif params["Action"] == "SendBatchSms":
            numbers = json.loads(params["PhoneNumberJson"])
            signs = json.loads(params["SignNameJson"])
            variables = json.loads(params.get("TemplateParamJson") or "[]")
            if len(numbers) > 100 or not len(numbers) == len(signs) == len(variables):
                return _answer(200, {"Code": "isv.INVALID_PARAMETERS", "Message": "counts"})
        else:
            return _answer(400, {"Code": "InvalidAction.NotFound", "Message": "no such action"})
        return self._send(params, numbers, signs, variables)

    def _check(self, method: str, params: dict[str, str]) -> str | None:
        """The documented RPC checks: common parameters, fresh time, unused nonce, signature."""
        given = params.pop("Signature", "")
        if method != "POST" or params.get("Version") != "2017-05-25":
            return "InvalidVersion"
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            return "InvalidSignatureMethod"
        if params.get("AccessKeyId") != self.key_id:
            return "InvalidAccessKeyId.NotFound"
        stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ")
        if abs(datetime.now(UTC) - stamp.replace(tzinfo=UTC)) > timedelta(minutes=15):
            return "InvalidTimeStamp.Expired"
        with self._lock:
            if params.get("SignatureNonce", "") in self._nonces:
                return "SignatureNonceUsed"
            self._nonces.add(params.get("SignatureNonce", ""))
        if not hmac.compare_digest(given, expected_signature(params, self.secret)):
            return "SignatureDoesNotMatch"
        return None

    def _send(
        self, params: dict[str, str], numbers: list[str], signs: list[str], variables: list[Any]
    ) -> tuple[int, dict[str, str], bytes]:
        template = self.templates.get(params.get("TemplateCode", ""))
        if template is None:
            return _answer(200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "template"})
        if len(numbers) > 1000 or len(set(numbers)) != len(numbers):
            return _answer(200, {"Code": "isv.MOBILE_COUNT_OVER_LIMIT", "Message": "numbers"})
        if any(not re.fullmatch(r"1\d{10}", n) or fate(n) == "invalid" for n in numbers):
            return _answer(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "number"})
        with self._lock:
            fresh = [n for n in numbers if fate(n) == "throttled" and n not in self._throttled]
            self._throttled.update(fresh)
        if fresh:
            return _answer(400, {"Code": "Throttling.User", "Message": "user flow control"})
        texts = []
        for sign, values in zip(signs, variables, strict=True):
            text = template
            for name in re.findall(r"\$\{(\w+)\}", template):
                if name not in values:
                    return _answer(
                        200, {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": name}
                    )
                text = text.replace("${" + name + "}", str(values[name]))
            texts.append(f"【{sign}】{text}")
        biz_id = f"{next(self._biz)}^0"
        with self._lock:
            self.requests.append((params["Action"], len(numbers)))
            if len(numbers) == 1:
                self.out_ids[numbers[0]] = params.get("OutId", "")
            for number, text in zip(numbers, texts, strict=True):
                self.handsets.setdefault(number, []).append(text)
        self._push(biz_id, params.get("OutId", ""), numbers, signs)
        return _answer(200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": "r"})

    def _push(self, biz_id: str, out_id: str, numbers: list[str], signs: list[str]) -> None:
        if self.callback_url is None:
            return
        now = (datetime.now(UTC) + CHINA).strftime("%Y-%m-%d %H:%M:%S")
        reports = [
            {
                "phone_number": number,
                "send_time": now,
                "report_time": now,
                "success": fate(number) != "undelivered",
                "err_code": "DELIVERED" if fate(number) != "undelivered" else "MK:0012",
                "err_msg": "用户接收成功",
                "sms_size": "1",
                "biz_id": biz_id,
                "out_id": out_id,
            }
            for number in numbers
        ]
        self.poster.post(self.callback_url, json=reports)
        ups = [
            {
                "phone_number": number,
                "send_time": now,
                "content": "TD",
                "sign_name": sign,
                "dest_code": "1234",
                "sequence_id": abs(hash((biz_id, number))) % 10**10,
            }
            for number, sign in zip(numbers, signs, strict=True)
            if fate(number) == "replies"
        ]
        if ups:
            self.poster.post(self.callback_url, json=ups, later=0.5)


def _answer(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body, ensure_ascii=False).encode()
    return status, {"Content-Type": "application/json;charset=utf-8"}, data
