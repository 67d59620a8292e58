"""Twilio: the Messages API (from a Messaging Service or a number), StatusCallback receipts
and inbound messages, both checked by their X-Twilio-Signature.

Twilio takes one message per request, so a batch is sent as concurrent requests. The status
callback URL is the account's `public_url` plus /hooks/twilio/<account>: Twilio signs that
exact URL, so it must be the address Twilio sees, not the one behind a proxy.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Self
from urllib.parse import parse_qsl

from pydantic import SecretStr, model_validator

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
    e164,
    post,
    retry_after,
    run_requests,
)

KIND = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
THROTTLE_CODES = frozenset({"20429", "14107"})  # too many requests; rate limit exceeded
# Refusals about the number or the member that a retry cannot change.
PERMANENT_CODES = frozenset({"21211", "21408", "21610", "21612", "21614", "21617", "30007"})
FINAL_STATUSES = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}


def twilio_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each parameter name and
    value, names sorted, a repeated name's distinct values sorted (as Twilio's libraries)."""
    values: dict[str, set[str]] = {}
    for key, value in params:
        values.setdefault(key, set()).add(value)
    data = url + "".join(f"{key}{value}" for key in sorted(values) for value in sorted(values[key]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioAccount(AccountSettings):
    """Keys of a Twilio account in TIDINGS_PROVIDER_ACCOUNTS."""

    account_sid: str
    auth_token: SecretStr
    messaging_service_sid: str | None = None
    from_number: str | None = None
    api_base: str = "https://api.twilio.com"
    public_url: str | None = None  # e.g. https://sms.example.com, as Twilio reaches tidings

    @model_validator(mode="after")
    def _a_sender(self) -> Self:
        if not (self.messaging_service_sid or self.from_number):
            raise ValueError("set messaging_service_sid or from_number")
        return self


class TwilioProvider(AccountProvider[TwilioAccount]):
    """Sends through Twilio's Messages API and reads its signed webhooks."""

    account_model = TwilioAccount
    shown_key = "account_sid"
    counting_scheme = "gsm7-ucs2"
    max_batch = 100

    @property
    def callback_url(self) -> str | None:
        """Where Twilio posts status callbacks and inbound messages for this account."""
        base = self.account.public_url
        return None if base is None else f"{base.rstrip('/')}/hooks/{KIND}/{self.name}"

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One Messages API request per message, a few at a time."""
        jobs: list[Request] = [
            ([message.id], functools.partial(self._send, message)) for message in messages
        ]
        return await run_requests(jobs, concurrency=max(1, self.max_concurrency))

    async def _send(self, message: OutgoingMessage) -> list[SendResult]:
        form = {"To": message.phone, "Body": message.text}
        if self.account.messaging_service_sid:
            form["MessagingServiceSid"] = self.account.messaging_service_sid
        else:
            form["From"] = str(self.account.from_number)
        if self.callback_url:
            form["StatusCallback"] = self.callback_url
        url = (
            f"{self.account.api_base}/2010-04-01/Accounts/{self.account.account_sid}/Messages.json"
        )
        auth = (self.account.account_sid, self.account.auth_token.get_secret_value())
        response = await post(self._clients.get(), url, data=form, auth=auth)
        if response.status_code >= 500:
            after = retry_after(response, SERVER_ERROR_RETRY)
            return [SendResult.retry(message.id, after, f"http_{response.status_code}")]
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code in (200, 201) and answer.get("sid"):
            return [SendResult.accepted(message.id, str(answer["sid"]))]
        code = str(answer.get("code") or f"http_{response.status_code}")
        if response.status_code == 429 or code in THROTTLE_CODES:
            return [SendResult.retry(message.id, retry_after(response, THROTTLE_RETRY), code)]
        return [SendResult.failed(message.id, code, permanent=code in PERMANENT_CODES)]

    def handle_callback(self, request: CallbackRequest) -> CallbackResult:
        """Checks X-Twilio-Signature, then reads a status callback or an inbound message."""
        try:
            params = parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise CallbackRejected(400, "the body is not form data") from None
        given = request.headers.get("x-twilio-signature", "")
        url = request.url
        if self.account.public_url:
            path = request.url.split("/hooks/", 1)[-1]
            url = f"{self.account.public_url.rstrip('/')}/hooks/{path}"
        expected = twilio_signature(url, params, self.account.auth_token.get_secret_value())
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise CallbackRejected(401, "X-Twilio-Signature is missing or does not match")
        fields = dict(params)
        result = CallbackResult(body=EMPTY_TWIML, media_type="text/xml")
        if "Body" in fields and fields.get("From"):
            result.replies.append(self._reply(fields))
        elif "MessageStatus" in fields or "SmsStatus" in fields:
            receipt = self._receipt(fields)
            if receipt is not None:
                result.receipts.append(receipt)
        else:
            raise CallbackRejected(400, "neither a status callback nor an inbound message")
        return result

    def _receipt(self, fields: Mapping[str, str]) -> Receipt | None:
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        if not sid:
            raise CallbackRejected(400, "a status callback without MessageSid")
        status = FINAL_STATUSES.get(fields.get("MessageStatus") or fields.get("SmsStatus", ""))
        if status is None:
            return None  # queued, sent, ...: on its way, nothing to record yet
        code = fields.get("ErrorCode") or None
        error = None if status == "delivered" else (code or "undelivered")
        return Receipt(self.name, sid, status, clock.now(), error)

    def _reply(self, fields: Mapping[str, str]) -> InboundReply:
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        if not sid:
            raise CallbackRejected(400, "an inbound message without MessageSid")
        return InboundReply(
            provider=self.name,
            phone=e164(fields["From"]),
            text=fields["Body"],
            received_at=clock.now(),
            provider_message_id=sid,
            recipient=fields.get("To") or None,
        )


register_provider_type(KIND, TwilioProvider.from_account)
