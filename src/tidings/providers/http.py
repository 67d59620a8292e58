"""A generic HTTP/JSON gateway, configured rather than coded, so that a regional aggregator
plugs in without a new module.

The account says where to POST, with which headers, a body template (strings such as
"{phone}", "{text}", "{id}" are filled in per message), how to read the answer (dotted paths
to the id, the status and the error, and which values mean accepted, throttled or refused
for good), and how to read receipt and reply callbacks. See docs/providers.md.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tidings import clock
from tidings.providers.base import (
    InboundReply,
    OutgoingMessage,
    Receipt,
    SendResult,
    register_provider_type,
)
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
    items_of,
    json_body,
    national,
    post,
    retry_after,
    run_requests,
)

KIND = "http"
_PLACEHOLDER = re.compile(r"\{(id|phone|text|parts|kind|campaign_id|secret)\}")


class UnreadableAnswer(ValueError):
    """The gateway took a batch but its answer does not say what became of each message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class ResponseMapping(_Strict):
    """Where the gateway's answer says what became of a message (dotted paths)."""

    id: str = "id"
    status: str | None = None  # path of a status or result code
    accepted: list[str] = Field(default_factory=list)  # status values meaning accepted
    throttled: list[str] = Field(default_factory=list)  # values meaning "slow down"
    permanent: list[str] = Field(default_factory=list)  # refusals a retry cannot change
    error: str | None = None  # path of the error code (default: the status)
    results: str = "results"  # batch mode: path of the list of answers, in the sent order


class BatchMapping(_Strict):
    """Batch mode: several messages in one request, as a list under `key`."""

    key: str = "messages"
    size: int = 100
    extra: dict[str, Any] = Field(default_factory=dict)  # fixed fields beside the list


class ReceiptMapping(_Strict):
    """How a receipt callback item names its message and its outcome."""

    items: str | None = None  # path of the list in the body (default: the body itself)
    id: str = "id"
    status: str = "status"
    delivered: list[str] = Field(default_factory=lambda: ["DELIVRD", "delivered"])
    expired: list[str] = Field(default_factory=lambda: ["EXPIRED", "expired"])
    error: str | None = None
    time: str | None = None  # ISO 8601 or Unix seconds; default: when it arrived


class ReplyMapping(_Strict):
    """How a reply callback item gives the member's number and text."""

    items: str | None = None
    phone: str = "from"
    text: str = "text"
    id: str | None = "id"
    time: str | None = None
    to: str | None = None


class HttpAccount(AccountSettings):
    """Keys of a generic HTTP gateway account in TIDINGS_PROVIDER_ACCOUNTS."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    secret: SecretStr | None = None  # filled into "{secret}" in headers or body
    encoding: Literal["json", "form"] = "json"
    body: dict[str, Any]
    batch: BatchMapping | None = None
    phone_format: Literal["e164", "national", "digits"] = "e164"
    response: ResponseMapping = Field(default_factory=ResponseMapping)
    receipts: ReceiptMapping = Field(default_factory=ReceiptMapping)
    replies: ReplyMapping = Field(default_factory=ReplyMapping)
    callback_hmac_header: str | None = None  # header of a hex HMAC-SHA256 of the body
    callback_secret: SecretStr | None = None
    acknowledgement: str = '{"ok": true}'
    counting_scheme: str = "gsm7-ucs2"


def dig(data: Any, path: str | None) -> Any:
    """The value at a dotted path ('data.items.0.id'), or None."""
    if path is None:
        return None
    for part in path.split("."):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def fill(template: Any, values: Mapping[str, Any]) -> Any:
    """The body template with its placeholders filled: "{id}" alone keeps the value's type."""
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole is not None:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda found: str(values[found.group(1)]), template)
    return template


class HttpProvider(AccountProvider[HttpAccount]):
    """A gateway that speaks JSON (or a form) over HTTP, as its account describes."""

    account_model = HttpAccount
    shown_key = "url"

    def __init__(self, name: str, account: HttpAccount, price_per_part_cents: int) -> None:
        super().__init__(name, account, price_per_part_cents)
        self.counting_scheme = account.counting_scheme
        self.max_batch = account.batch.size if account.batch else 100

    def _values(self, message: OutgoingMessage) -> dict[str, Any]:
        phone = message.phone
        if self.account.phone_format == "national":
            phone = national(phone)
        elif self.account.phone_format == "digits":
            phone = phone.lstrip("+")
        secret = self.account.secret.get_secret_value() if self.account.secret else ""
        return {
            "id": message.id,
            "phone": phone,
            "text": message.text,
            "parts": message.parts,
            "kind": message.kind,
            "campaign_id": message.campaign_id,
            "secret": secret,
        }

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One request per message, or per `batch.size` messages in batch mode."""
        size = self.account.batch.size if self.account.batch else 1
        jobs: list[Request] = []
        for start in range(0, len(messages), size):
            chunk = list(messages[start : start + size])
            jobs.append(([m.id for m in chunk], functools.partial(self._send, chunk)))
        return await run_requests(jobs, concurrency=max(1, self.max_concurrency))

    async def _send(self, chunk: list[OutgoingMessage]) -> list[SendResult]:
        ids = [message.id for message in chunk]
        bodies = [fill(self.account.body, self._values(message)) for message in chunk]
        batch = self.account.batch
        payload: Any = {**batch.extra, batch.key: bodies} if batch else bodies[0]
        secret = {"secret": self.account.secret.get_secret_value() if self.account.secret else ""}
        headers = {key: fill(value, secret) for key, value in self.account.headers.items()}
        if self.account.encoding == "form":
            options: dict[str, Any] = {"data": payload, "headers": headers}
        else:
            options = {"json": payload, "headers": headers}
        response = await post(self._clients.get(), self.account.url, **options)
        return self._read(response, chunk, ids)

    def _read(
        self, response: httpx.Response, chunk: list[OutgoingMessage], ids: list[int]
    ) -> list[SendResult]:
        status = response.status_code
        if status == 429:
            return all_retry(ids, retry_after(response, THROTTLE_RETRY), "http_429")
        if status >= 500:
            return all_retry(ids, retry_after(response, SERVER_ERROR_RETRY), f"http_{status}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if self.account.batch is None:
            return [self._verdict(ids[0], answer, status)]
        items = dig(answer, self.account.response.results)
        if isinstance(items, list) and len(items) == len(chunk):
            return [self._verdict(i, item, status) for i, item in zip(ids, items, strict=True)]
        whole = self._verdict(0, answer, status)
        if whole.error_code is not None:
            return [_for(message_id, whole) for message_id in ids]
        # Taken, but the answer does not say under which ids: the outcome is unknown, and
        # guessing could send twice. The worker leaves them to reconciliation.
        raise UnreadableAnswer(f"{self.name}: no list of {len(chunk)} results in the answer")

    def _verdict(self, message_id: int, answer: Any, http_status: int) -> SendResult:
        """What one answer (a whole response or one item of a batch's) says of a message."""
        mapping = self.account.response
        code = dig(answer, mapping.status)
        code_text = None if code is None else str(code)
        accepted = (code_text in mapping.accepted) if mapping.accepted else 200 <= http_status < 300
        provider_id = dig(answer, mapping.id)
        if accepted and provider_id not in (None, ""):
            return SendResult.accepted(message_id, str(provider_id))
        error = dig(answer, mapping.error)
        error = code if error is None else error
        error_text = str(error if error is not None else f"http_{http_status}")[:64]
        if error_text in mapping.throttled or code_text in mapping.throttled:
            return SendResult.retry(message_id, THROTTLE_RETRY, error_text)
        return SendResult.failed(message_id, error_text, permanent=error_text in mapping.permanent)

    def handle_callback(self, request: CallbackRequest) -> CallbackResult:
        """Checks the HMAC header or the token, then reads receipts or replies (or both);
        `?kind=receipts` or `?kind=replies` in the callback URL settles which an item is."""
        self._verify(request)
        payload = json_body(request)
        result = CallbackResult(body=self.account.acknowledgement)
        receipts, replies = self.account.receipts, self.account.replies
        wanted = request.query.get("kind")
        for item in self._items(payload):
            is_receipt = None not in (dig(item, receipts.id), dig(item, receipts.status))
            if wanted != "replies" and is_receipt:
                result.receipts.append(self._receipt(item))
            elif wanted != "receipts" and dig(item, replies.text) is not None:
                result.replies.append(self._reply(item))
            else:
                raise CallbackRejected(400, "an item is neither a receipt nor a reply")
        return result

    def _items(self, payload: Any) -> list[dict[str, Any]]:
        """The items of a callback: under the receipts' or the replies' path, or the body."""
        for path in (self.account.receipts.items, self.account.replies.items):
            found = dig(payload, path)
            if found is not None:
                return items_of(found)
        return items_of(payload)

    def _verify(self, request: CallbackRequest) -> None:
        header, secret = self.account.callback_hmac_header, self.account.callback_secret
        if header is None or secret is None:
            check_token(request, self.account.callback_token, self.name)
            return
        given = request.headers.get(header.lower(), "").removeprefix("sha256=")
        expected = hmac.new(secret.get_secret_value().encode(), request.body, hashlib.sha256)
        if not given or not hmac.compare_digest(given.encode(), expected.hexdigest().encode()):
            raise CallbackRejected(401, f"the {header} signature is missing or does not match")

    def _receipt(self, item: Any) -> Receipt:
        mapping = self.account.receipts
        status = str(dig(item, mapping.status))
        if status in mapping.delivered:
            outcome, error = "delivered", None
        else:
            outcome = "expired" if status in mapping.expired else "failed"
            error = str(dig(item, mapping.error) or status)[:64]
        return Receipt(
            self.name, str(dig(item, mapping.id)), outcome, _time(item, mapping.time), error
        )

    def _reply(self, item: Any) -> InboundReply:
        mapping = self.account.replies
        phone = dig(item, mapping.phone)
        if phone in (None, ""):
            raise CallbackRejected(400, f"a reply has no {mapping.phone!r}")
        reply_id = dig(item, mapping.id)
        to = dig(item, mapping.to)
        return InboundReply(
            provider=self.name,
            phone=e164(str(phone)),
            text=str(dig(item, mapping.text)),
            received_at=_time(item, mapping.time),
            provider_message_id=None if reply_id is None else str(reply_id),
            recipient=None if to is None else str(to),
        )


def _for(message_id: int, verdict: SendResult) -> SendResult:
    """The verdict on a whole request, given to one of its messages."""
    return SendResult(
        message_id,
        verdict.outcome,
        verdict.provider_message_id,
        verdict.retry_after,
        verdict.error_code,
        verdict.permanent,
    )


def _time(item: Any, path: str | None) -> datetime:
    value = dig(item, path)
    if value is None:
        return clock.now()
    try:
        if isinstance(value, int | float) or str(value).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        parsed = datetime.fromisoformat(str(value))
    except (ValueError, OverflowError):
        raise CallbackRejected(
            400, f"time {value!r} is neither ISO 8601 nor Unix seconds"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


register_provider_type(KIND, HttpProvider.from_account)
