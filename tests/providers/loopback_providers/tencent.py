"""A loopback Tencent Cloud SMS API (2021-01-11) as Tencent documents it: JSON POSTs signed
with TC3-HMAC-SHA256 (checked here from the headers the request names), SendSms with one
template to up to 200 numbers, and the status and reply callbacks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .servers import CallbackPoster, LoopbackServer, fate

CHINA = timedelta(hours=8)
_AUTH = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>[\d-]+)/(?P<service>\w+)/tc3_request,"
    r" SignedHeaders=(?P<headers>[\w;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def check_tc3(headers: dict[str, str], body: bytes, secrets: dict[str, str]) -> str | None:
    """The documented steps of TC3-HMAC-SHA256, done by the receiving side; an error code."""
    found = _AUTH.fullmatch(headers.get("authorization", ""))
    if found is None:
        return "AuthFailure.InvalidAuthorization"
    secret = secrets.get(found["id"])
    if secret is None:
        return "AuthFailure.SecretIdNotFound"
    timestamp = int(headers.get("x-tc-timestamp", "0"))
    if abs(time.time() - timestamp) > 300:
        return "AuthFailure.SignatureExpire"
    if datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") != found["date"]:
        return "AuthFailure.SignatureFailure"
    names = found["headers"].split(";")
    if "content-type" not in names or "host" not in names:
        return "AuthFailure.SignatureFailure"
    canonical_headers = "".join(f"{n}:{headers.get(n, '').strip().lower()}\n" for n in names)
    request = "POST\n/\n\n" + canonical_headers + "\n" + found["headers"] + "\n"
    request += hashlib.sha256(body).hexdigest()
    scope = f"{found['date']}/{found['service']}/tc3_request"
    hashed = hashlib.sha256(request.encode()).hexdigest()
    string_to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashed}"
    key = _hmac(("TC3" + secret).encode(), found["date"])
    key = _hmac(_hmac(key, found["service"]), "tc3_request")
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        None
        if hmac.compare_digest(expected, found["signature"])
        else "AuthFailure.SignatureFailure"
    )


class FakeTencent(LoopbackServer):
    """Tencent Cloud SMS on loopback: checks the signature, sends approved templates."""

    def __init__(self, *, secret_id: str, secret_key: str, app_id: str, templates: dict[str, str]):
        super().__init__(self.handle)
        self.secrets = {secret_id: secret_key}
        self.app_id, self.templates = app_id, templates
        self.callback_url: str | None = None
        self.poster = CallbackPoster()
        self.handsets: dict[str, list[str]] = {}
        self.contexts: list[str] = []  # SessionContext of each accepted request
        self._throttled: set[str] = set()
        self._serial = itertools.count(1045710669157053657849499619)
        self._lock = threading.Lock()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        error = check_tc3(headers, body, self.secrets)
        if error is None and (
            headers.get("x-tc-action") != "SendSms" or headers.get("x-tc-version") != "2021-01-11"
        ):
            error = "InvalidAction"
        if error is not None:
            return _answer({"Error": {"Code": error, "Message": error}})
        request = json.loads(body)
        numbers: list[str] = request["PhoneNumberSet"]
        template = self.templates.get(request.get("TemplateId", ""))
        if request.get("SmsSdkAppId") != self.app_id:
            return _answer({"Error": {"Code": "InvalidParameterValue.SdkAppIdNotExist"}})
        if template is None:
            return _answer({"Error": {"Code": "FailedOperation.TemplateIncorrectOrUnapproved"}})
        if len(numbers) > 200:
            return _answer({"Error": {"Code": "LimitExceeded.PhoneNumberCountLimit"}})
        with self._lock:
            fresh = [n for n in numbers if fate(n) == "throttled" and n not in self._throttled]
            self._throttled.update(fresh)
        if fresh:
            return _answer({"Error": {"Code": "RequestLimitExceeded", "Message": "too fast"}})
        params = request.get("TemplateParamSet") or []
        text = re.sub(r"\{(\d+)\}", lambda m: params[int(m.group(1)) - 1], template)
        statuses = [self._deliver(n, f"【{request['SignName']}】{text}", request) for n in numbers]
        with self._lock:
            self.contexts.append(request.get("SessionContext", ""))
        self._push(statuses, request["SignName"])
        return _answer({"SendStatusSet": statuses})

    def _deliver(self, number: str, text: str, request: dict[str, Any]) -> dict[str, Any]:
        status = {"PhoneNumber": number, "SessionContext": request.get("SessionContext", "")}
        if fate(number) == "invalid":
            return {**status, "SerialNo": "", "Code": "InvalidParameterValue.IncorrectPhoneNumber"}
        with self._lock:
            self.handsets.setdefault(number, []).append(text)
        serial = f"2433:{next(self._serial)}"
        return {**status, "SerialNo": serial, "Fee": 1, "Code": "Ok", "Message": "send success"}

    def _push(self, statuses: list[dict[str, Any]], sign: str) -> None:
        if self.callback_url is None:
            return
        now = (datetime.now(UTC) + CHINA).strftime("%Y-%m-%d %H:%M:%S")
        reports = [
            {
                "user_receive_time": now,
                "nationcode": "86",
                "mobile": s["PhoneNumber"].removeprefix("+86"),
                "report_status": "FAIL" if fate(s["PhoneNumber"]) == "undelivered" else "SUCCESS",
                "errmsg": "MK:0012" if fate(s["PhoneNumber"]) == "undelivered" else "DELIVRD",
                "description": "用户短信送达成功",
                "sid": s["SerialNo"],
            }
            for s in statuses
            if s["Code"] == "Ok"
        ]
        if reports:
            self.poster.post(self.callback_url, json=reports)
        for s in statuses:
            if s["Code"] == "Ok" and fate(s["PhoneNumber"]) == "replies":
                reply = {
                    "extend": "",
                    "mobile": s["PhoneNumber"].removeprefix("+86"),
                    "nationcode": "86",
                    "sign": sign,
                    "text": "退订",
                    "time": int(time.time()),
                }
                self.poster.post(self.callback_url, json=reply, later=0.5)


def _answer(response: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    body = {"Response": {**response, "RequestId": "a1b2c3"}}
    return 200, {"Content-Type": "application/json"}, json.dumps(body, ensure_ascii=False).encode()
