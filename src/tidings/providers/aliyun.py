"""Aliyun SMS (Dysms API 2017-05-25): SendSms and SendBatchSms with the RPC signature, and
the SmsReport (receipts) and SmsUp (replies) HTTP batch pushes.

Messages that share a template, a signature and every variable (one text) go in one SendSms
of up to 1,000 numbers; the others go by SendBatchSms, up to 100 numbers with a signature and
variables each. Aliyun answers one BizId per request and reports each number under it, so a
message is known as '<BizId>:<number>'. OutId carries our message id (a range for a batch).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import Field, SecretStr

from tidings import clock
from tidings.providers.base import (
    InboundReply,
    OutgoingMessage,
    Receipt,
    SendResult,
    register_provider_type,
)
from tidings.providers.templates import ApprovedTemplate, TemplateBook
from tidings.providers.webhooks import (
    AccountProvider,
    AccountSettings,
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    Request,
    all_failed,
    all_retry,
    check_token,
    e164,
    field_of,
    items_of,
    json_body,
    local_time,
    national,
    post,
    retry_after,
    run_requests,
)

KIND = "aliyun"
API_VERSION = "2017-05-25"
SEND_SMS_LIMIT = 1000  # numbers in one SendSms
SEND_BATCH_LIMIT = 100  # numbers in one SendBatchSms
ACKNOWLEDGEMENT = json.dumps({"code": 0, "msg": "成功"}, ensure_ascii=False)
# Throttling of the API (per account) and flow control per number, with the wait in seconds.
THROTTLE_CODES = {
    "Throttling": 1.0,
    "Throttling.User": 1.0,
    "Throttling.Api": 1.0,
    "isv.BUSINESS_LIMIT_CONTROL": 60.0,
}
# Refusals that concern one number: in a request of several, each is tried on its own.
NUMBER_CODES = frozenset(
    {"isv.MOBILE_NUMBER_ILLEGAL", "isv.BLACK_KEY_CONTROL_LIMIT", "isv.DAY_LIMIT_CONTROL"}
)
PERMANENT_CODES = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.INVALID_JSON_PARAM",
    }
)


def percent_encode(text: str) -> str:
    """RFC 3986 encoding as Aliyun's RPC signature wants it (space as %20, ~ kept)."""
    return quote(text, safe="-_.~")


def rpc_signature(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    """HMAC-SHA1 of 'METHOD&%2F&<encoded canonical query>' keyed with 'secret&', base64."""
    canonical = "&".join(
        f"{percent_encode(key)}={percent_encode(params[key])}" for key in sorted(params)
    )
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunAccount(AccountSettings):
    """Keys of an Aliyun account in TIDINGS_PROVIDER_ACCOUNTS."""

    access_key_id: str
    access_key_secret: SecretStr
    sign_name: str  # the approved signature, used when a text starts with no 【...】
    endpoint: str = "https://dysmsapi.aliyuncs.com/"
    region_id: str = "cn-hangzhou"
    templates: dict[str, ApprovedTemplate] = Field(default_factory=dict)


class AliyunProvider(AccountProvider[AliyunAccount]):
    """Sends through Aliyun SMS and reads its SmsReport and SmsUp pushes."""

    account_model = AliyunAccount
    shown_key = "endpoint"
    counting_scheme = "chars-70-67"
    max_batch = SEND_SMS_LIMIT

    def __init__(self, name: str, account: AliyunAccount, price_per_part_cents: int) -> None:
        super().__init__(name, account, price_per_part_cents)
        self.book = TemplateBook(KIND, account.templates)

    def _sign(self, action: str, params: dict[str, str]) -> dict[str, str]:
        signed = {
            "AccessKeyId": self.account.access_key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": self.account.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            **params,
        }
        secret = self.account.access_key_secret.get_secret_value()
        signed["Signature"] = rpc_signature(signed, secret)
        return signed

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Fits each message to an approved template and sends them in as few requests as
        the API allows; a message no approved template fits fails at once."""
        fitted, results = self.book.fit(messages, self.account.sign_name)
        texts: dict[tuple[str, str, str], list[tuple[OutgoingMessage, str]]] = {}
        for message, sign, match in fitted:
            params = json.dumps(match.params, ensure_ascii=False, sort_keys=True)
            texts.setdefault((match.code, sign, params), []).append((message, sign))
        jobs: list[Request] = []
        singles: dict[str, list[tuple[OutgoingMessage, str, str]]] = {}
        for (code, sign, params), group in texts.items():
            if len(group) == 1:
                singles.setdefault(code, []).append((group[0][0], sign, params))
                continue
            for chunk in _distinct_phones(group, SEND_SMS_LIMIT):
                job = functools.partial(self._send_sms, code, chunk, params)
                jobs.append(([message.id for message, _ in chunk], job))
        for code, lone in singles.items():
            job = functools.partial(self._send_batch_sms, code, lone)
            jobs.append(([message.id for message, _, _ in lone], job))
        return results + await run_requests(jobs)

    async def _send_sms(
        self, code: str, chunk: list[tuple[OutgoingMessage, str]], params: str
    ) -> list[SendResult]:
        """One SendSms: the same text to every number of `chunk`."""
        ids = [message.id for message, _ in chunk]
        numbers = [national(message.phone) for message, _ in chunk]
        request = {
            "PhoneNumbers": ",".join(numbers),
            "SignName": chunk[0][1],
            "TemplateCode": code,
            "TemplateParam": params,
            "OutId": _out_id(ids),
        }
        answer = await self._call("SendSms", request, ids)
        if isinstance(answer, str):
            return _accepted(answer, ids, numbers)
        if answer[0].error_code in NUMBER_CODES and len(chunk) > 1:
            return await self._one_by_one(code, [(m, s, params) for m, s in chunk])
        return answer

    async def _send_batch_sms(
        self, code: str, group: list[tuple[OutgoingMessage, str, str]]
    ) -> list[SendResult]:
        """SendBatchSms requests of up to 100 numbers, each with its signature and variables;
        a lone message goes by SendSms."""
        jobs: list[Request] = []
        for chunk in _distinct_phones(group, SEND_BATCH_LIMIT):
            ids = [message.id for message, _, _ in chunk]
            if len(chunk) == 1:
                message, sign, params = chunk[0]
                jobs.append(
                    (ids, functools.partial(self._send_sms, code, [(message, sign)], params))
                )
            else:
                jobs.append((ids, functools.partial(self._send_batch_request, code, chunk)))
        return await run_requests(jobs)

    async def _send_batch_request(
        self, code: str, chunk: list[tuple[OutgoingMessage, str, str]]
    ) -> list[SendResult]:
        """One SendBatchSms: one template, a signature and variables per number."""
        ids = [message.id for message, _, _ in chunk]
        numbers = [national(message.phone) for message, _, _ in chunk]
        request = {
            "PhoneNumberJson": json.dumps(numbers),
            "SignNameJson": json.dumps([sign for _, sign, _ in chunk], ensure_ascii=False),
            "TemplateCode": code,
            "TemplateParamJson": "[" + ",".join(params for _, _, params in chunk) + "]",
            "OutId": _out_id(ids),
        }
        answer = await self._call("SendBatchSms", request, ids)
        if isinstance(answer, str):
            return _accepted(answer, ids, numbers)
        if answer[0].error_code in NUMBER_CODES:
            return await self._one_by_one(code, chunk)
        return answer

    async def _one_by_one(
        self, code: str, chunk: Sequence[tuple[OutgoingMessage, str, str]]
    ) -> list[SendResult]:
        """Sends each message alone, so a refused number fails only its own message."""
        return await run_requests(
            [
                ([message.id], functools.partial(self._send_sms, code, [(message, sign)], params))
                for message, sign, params in chunk
            ]
        )

    async def _call(
        self, action: str, params: dict[str, str], ids: list[int]
    ) -> str | list[SendResult]:
        """Calls the API; the BizId when it took the request, else one answer per message."""
        response = await post(
            self._clients.get(), self.account.endpoint, data=self._sign(action, params)
        )
        if response.status_code >= 500:
            return all_retry(ids, retry_after(response, 5.0), f"http_{response.status_code}")
        try:
            answer = response.json()
            code = str(answer.get("Code", ""))
        except (ValueError, AttributeError):
            return all_retry(ids, 5.0, f"http_{response.status_code}")
        if code == "OK" and answer.get("BizId"):
            return str(answer["BizId"])
        if response.status_code == 429 or code in THROTTLE_CODES:
            return all_retry(ids, retry_after(response, THROTTLE_CODES.get(code, 1.0)), code)
        return all_failed(
            ids, code or f"http_{response.status_code}", permanent=code in PERMANENT_CODES
        )

    def handle_callback(self, request: CallbackRequest) -> CallbackResult:
        """Reads an SmsReport or SmsUp batch push; answers {"code": 0, "msg": "成功"}."""
        check_token(request, self.account.callback_token, self.name)
        result = CallbackResult(body=ACKNOWLEDGEMENT)
        for item in items_of(json_body(request)):
            if "biz_id" in item:
                result.receipts.append(self._receipt(item))
            else:
                result.replies.append(self._reply(item))
        return result

    def _receipt(self, item: dict[str, Any]) -> Receipt:
        number = field_of(item, "phone_number")
        success = item.get("success")
        if not isinstance(success, bool):
            success = str(success).lower() == "true"
        stamp = item.get("report_time") or field_of(item, "send_time")
        return Receipt(
            provider=self.name,
            provider_message_id=f"{field_of(item, 'biz_id')}:{national(e164(number))}",
            status="delivered" if success else "failed",
            occurred_at=local_time(str(stamp)),
            error_code=None if success else str(item.get("err_code") or "UNDELIVERED")[:64],
        )

    def _reply(self, item: dict[str, Any]) -> InboundReply:
        number = e164(field_of(item, "phone_number"))
        if "content" not in item:
            raise CallbackRejected(400, "an SmsUp item has no 'content'")
        stamp = item.get("send_time")
        return InboundReply(
            provider=self.name,
            phone=number,
            text=str(item["content"] or ""),
            received_at=local_time(str(stamp)) if stamp else clock.now(),
            provider_message_id=str(field_of(item, "sequence_id")),
            recipient=str(item.get("dest_code") or "") or None,
        )


def _distinct_phones(group: Sequence[Any], limit: int) -> list[list[Any]]:
    """Splits `group` into requests of at most `limit`, never a number twice in one, since
    Aliyun reports each number once per BizId."""
    requests: list[list[Any]] = []
    seen: list[set[str]] = []
    for entry in group:
        phone = entry[0].phone
        for chunk, phones in zip(requests, seen, strict=True):
            if len(chunk) < limit and phone not in phones:
                chunk.append(entry)
                phones.add(phone)
                break
        else:
            requests.append([entry])
            seen.append({phone})
    return requests


def _accepted(biz_id: str, ids: Sequence[int], numbers: Sequence[str]) -> list[SendResult]:
    """Aliyun reports each number under the request's BizId: '<BizId>:<number>'."""
    return [SendResult.accepted(i, f"{biz_id}:{n}") for i, n in zip(ids, numbers, strict=True)]


def _out_id(ids: Sequence[int]) -> str:
    """Our message id, or the range of ids of a request of several."""
    return str(ids[0]) if len(ids) == 1 else f"{min(ids)}-{max(ids)}"


register_provider_type(KIND, AliyunProvider.from_account)
