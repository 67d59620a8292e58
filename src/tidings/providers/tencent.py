"""Tencent Cloud SMS (API 2021-01-11): SendSms signed with TC3-HMAC-SHA256, and the status
and reply callbacks.

One SendSms carries one text (template, signature and variables) to up to 200 numbers, so
messages with the same text share a request. SessionContext carries our message id (the ids
of a shared request); Tencent answers a SerialNo per number, and its status callback names
the message by that SerialNo (`sid`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from tidings.providers.base import (
    InboundReply,
    OutgoingMessage,
    Receipt,
    SendResult,
    register_provider_type,
)
from tidings.providers.templates import ApprovedTemplate, TemplateBook
from tidings.providers.webhooks import (
    SERVER_ERROR_RETRY,
    THROTTLE_RETRY,
    AccountProvider,
    AccountSettings,
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    Request,
    all_retry,
    check_token,
    e164,
    field_of,
    items_of,
    json_body,
    local_time,
    post,
    retry_after,
    run_requests,
)

KIND = "tencent"
API_VERSION = "2021-01-11"
SERVICE = "sms"
SEND_LIMIT = 200  # numbers in one SendSms
SESSION_CONTEXT_LIMIT = 511  # bytes Tencent returns as they were sent
ACKNOWLEDGEMENT = json.dumps({"result": 0, "errmsg": "OK"})
SUCCESS = "Ok"
# Codes that mean "not now", with the wait in seconds.
RETRY_CODES = {
    "RequestLimitExceeded": THROTTLE_RETRY,
    "LimitExceeded.DeliveryFrequencyLimit": 60.0,
    "LimitExceeded.PhoneNumberThirtySecondLimit": 30.0,
    "LimitExceeded.PhoneNumberOneHourLimit": 3600.0,
    "InternalError.Timeout": SERVER_ERROR_RETRY,
    "InternalError": SERVER_ERROR_RETRY,
}
PERMANENT_CODES = frozenset(
    {
        "InvalidParameterValue.IncorrectPhoneNumber",
        "FailedOperation.PhoneNumberInBlacklist",
        "FailedOperation.ContainSensitiveWord",
        "InvalidParameterValue.ContentLengthLimit",
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
        "LimitExceeded.PhoneNumberDailyLimit",
    }
)


def tc3_authorization(
    *,
    secret_id: str,
    secret_key: str,
    host: str,
    action: str,
    payload: bytes,
    timestamp: int,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    """The Authorization header of a TC3-HMAC-SHA256 signed POST."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    signed_headers = "content-type;host;x-tc-action"
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\nx-tc-action:{action.lower()}\n",
            signed_headers,
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{date}/{SERVICE}/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = hmac.new(f"TC3{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    key = hmac.new(key, SERVICE.encode(), hashlib.sha256).digest()
    key = hmac.new(key, b"tc3_request", hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope},"
        f" SignedHeaders={signed_headers}, Signature={signature}"
    )


class TencentAccount(AccountSettings):
    """Keys of a Tencent Cloud account in TIDINGS_PROVIDER_ACCOUNTS."""

    secret_id: str
    secret_key: SecretStr
    sdk_app_id: str
    sign_name: str  # the approved signature, used when a text starts with no 【...】
    endpoint: str = "https://sms.tencentcloudapi.com/"
    region: str = "ap-guangzhou"
    templates: dict[str, ApprovedTemplate] = Field(default_factory=dict)


class TencentProvider(AccountProvider[TencentAccount]):
    """Sends through Tencent Cloud SMS and reads its status and reply callbacks."""

    account_model = TencentAccount
    shown_key = "endpoint"
    counting_scheme = "chars-70-67"
    max_batch = 1000

    def __init__(self, name: str, account: TencentAccount, price_per_part_cents: int) -> None:
        super().__init__(name, account, price_per_part_cents)
        self.book = TemplateBook(KIND, account.templates)

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Fits each message to an approved template; one request per text and 200 numbers."""
        fitted, results = self.book.fit(messages, self.account.sign_name)
        texts: dict[tuple[str, str, tuple[str, ...]], list[OutgoingMessage]] = {}
        for message, sign, match in fitted:
            params = tuple(match.params[key] for key in sorted(match.params, key=int))
            texts.setdefault((match.code, sign, params), []).append(message)
        jobs: list[Request] = []
        for (code, sign, params), group in texts.items():
            for chunk in _distinct_phones(group):
                job = functools.partial(self._send, code, sign, list(params), chunk)
                jobs.append(([message.id for message in chunk], job))
        return results + await run_requests(jobs, concurrency=self.max_concurrency)

    async def _send(
        self, code: str, sign: str, params: list[str], chunk: list[OutgoingMessage]
    ) -> list[SendResult]:
        ids = [message.id for message in chunk]
        body = {
            "PhoneNumberSet": [message.phone for message in chunk],
            "SmsSdkAppId": self.account.sdk_app_id,
            "TemplateId": code,
            "SignName": sign,
            "TemplateParamSet": params,
            "SessionContext": _session_context(ids),
        }
        payload = json.dumps(body, ensure_ascii=False).encode()
        client = self._clients.get()
        response = await post(
            client, self.account.endpoint, content=payload, headers=self._headers(payload)
        )
        status = response.status_code
        if status >= 500:
            return all_retry(ids, retry_after(response, SERVER_ERROR_RETRY), f"http_{status}")
        try:
            answer = response.json()["Response"]
        except (ValueError, KeyError, TypeError):
            return all_retry(ids, SERVER_ERROR_RETRY, f"http_{status}")
        if "Error" in answer:
            error = str(answer["Error"].get("Code", "error"))
            return [_refusal(message_id, error) for message_id in ids]
        statuses = answer.get("SendStatusSet") or []
        by_phone = {str(status.get("PhoneNumber")): status for status in statuses}
        return [_answer(message, by_phone.get(message.phone)) for message in chunk]

    def _headers(self, payload: bytes) -> dict[str, str]:
        """The API's headers, the TC3-HMAC-SHA256 Authorization among them."""
        host = urlsplit(self.account.endpoint).netloc
        timestamp = int(datetime.now(UTC).timestamp())
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Host": host,
            "X-TC-Action": "SendSms",
            "X-TC-Version": API_VERSION,
            "X-TC-Region": self.account.region,
            "X-TC-Timestamp": str(timestamp),
            "Authorization": tc3_authorization(
                secret_id=self.account.secret_id,
                secret_key=self.account.secret_key.get_secret_value(),
                host=host,
                action="SendSms",
                payload=payload,
                timestamp=timestamp,
            ),
        }

    def handle_callback(self, request: CallbackRequest) -> CallbackResult:
        """Reads a status or reply callback; answers {"result": 0, "errmsg": "OK"}."""
        check_token(request, self.account.callback_token, self.name)
        result = CallbackResult(body=ACKNOWLEDGEMENT)
        for item in items_of(json_body(request)):
            if "report_status" in item:
                result.receipts.append(self._receipt(item))
            else:
                result.replies.append(self._reply(item))
        return result

    def _receipt(self, item: dict[str, Any]) -> Receipt:
        status = field_of(item, "report_status").upper()
        if status not in {"SUCCESS", "FAIL"}:
            raise CallbackRejected(400, f"report_status {status!r} is not SUCCESS or FAIL")
        return Receipt(
            provider=self.name,
            provider_message_id=field_of(item, "sid"),
            status="delivered" if status == "SUCCESS" else "failed",
            occurred_at=local_time(field_of(item, "user_receive_time")),
            error_code=None if status == "SUCCESS" else str(item.get("errmsg") or "FAIL")[:64],
        )

    def _reply(self, item: dict[str, Any]) -> InboundReply:
        nation = str(item.get("nationcode") or "86")
        if "text" not in item:
            raise CallbackRejected(400, "a reply has no 'text'")
        try:
            received_at = datetime.fromtimestamp(int(field_of(item, "time")), UTC)
        except (ValueError, OverflowError):
            raise CallbackRejected(400, "a reply's 'time' is not a Unix time") from None
        return InboundReply(
            provider=self.name,
            phone=e164(f"+{nation}{field_of(item, 'mobile')}"),
            text=str(item["text"] or ""),
            received_at=received_at,
            recipient=str(item.get("extend") or "") or None,
        )


def _answer(message: OutgoingMessage, status: Mapping[str, Any] | None) -> SendResult:
    if status is None:
        return SendResult.retry(message.id, SERVER_ERROR_RETRY, "no_status")
    code = str(status.get("Code", ""))
    if code == SUCCESS and status.get("SerialNo"):
        return SendResult.accepted(message.id, str(status["SerialNo"]))
    return _refusal(message.id, code or "error")


def _refusal(message_id: int, code: str) -> SendResult:
    family = code.split(".")[0]
    wait = RETRY_CODES.get(code, RETRY_CODES.get(family))
    if wait is not None:
        return SendResult.retry(message_id, wait, code[:64])
    return SendResult.failed(message_id, code[:64], permanent=code in PERMANENT_CODES)


def _distinct_phones(group: Sequence[OutgoingMessage]) -> list[list[OutgoingMessage]]:
    """Requests of up to 200 numbers, never a number twice in one (answers are by number)."""
    requests: list[list[OutgoingMessage]] = []
    current: list[OutgoingMessage] = []
    phones: set[str] = set()
    for message in group:
        if len(current) == SEND_LIMIT or message.phone in phones:
            requests.append(current)
            current, phones = [], set()
        current.append(message)
        phones.add(message.phone)
    if current:
        requests.append(current)
    return requests


def _session_context(ids: Sequence[int]) -> str:
    """Our message ids, as many as fit; a range when they do not."""
    text = ",".join(str(i) for i in ids)
    return text if len(text) <= SESSION_CONTEXT_LIMIT else f"{min(ids)}-{max(ids)}"


register_provider_type(KIND, TencentProvider.from_account)
