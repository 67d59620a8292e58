"""A loopback Twilio Messages API as Twilio documents it: HTTP Basic auth with the Account
SID and auth token, form-encoded Messages.json requests, and StatusCallback and inbound
message webhooks signed with X-Twilio-Signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from typing import Any
from urllib.parse import parse_qsl

from .servers import CallbackPoster, LoopbackServer, fate


def signature_for(url: str, params: dict[str, str], auth_token: str) -> str:
    """As Twilio's security documentation says: the full URL, then each POST parameter
    sorted by name with its value appended, signed with HMAC-SHA1, base64-encoded."""
    data = url
    for name in sorted(params):
        data += name + params[name]
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


class FakeTwilio(LoopbackServer):
    """Twilio on loopback: one message per request, status callbacks and member replies."""

    def __init__(self, *, account_sid: str, auth_token: str) -> None:
        super().__init__(self.handle)
        self.account_sid, self.auth_token = account_sid, auth_token
        self.inbound_url: str | None = None  # the number's "a message comes in" webhook
        self.poster = CallbackPoster()
        self.handsets: dict[str, list[str]] = {}
        self.senders: set[str] = set()
        self._throttled: set[str] = set()
        self._lock = threading.Lock()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if headers.get("authorization") != expected:
            return _error(401, 20003, "Authentication Error - invalid username")
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return _error(404, 20404, "The requested resource was not found")
        form = dict(parse_qsl(body.decode()))
        senders = [form.get("From"), form.get("MessagingServiceSid")]
        if sum(1 for s in senders if s) != 1 or not form.get("To") or not form.get("Body"):
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        number = form["To"]
        if fate(number) == "invalid":
            return _error(400, 21211, f"The 'To' number {number} is not a valid phone number.")
        with self._lock:
            if fate(number) == "throttled" and number not in self._throttled:
                self._throttled.add(number)
                return _error(429, 20429, "Too Many Requests")
            self.handsets.setdefault(number, []).append(form["Body"])
            self.senders.add(str(form.get("MessagingServiceSid") or form.get("From")))
        sid = "SM" + uuid.uuid4().hex
        self._push(sid, form)
        answer = {"sid": sid, "status": "queued", "to": number, "body": form["Body"]}
        return 201, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def _push(self, sid: str, form: dict[str, str]) -> None:
        callback = form.get("StatusCallback")
        number = form["To"]
        common = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.account_sid,
            "To": number,
            "From": "+15005550006",
            "ApiVersion": "2010-04-01",
        }
        if callback:
            final = "undelivered" if fate(number) == "undelivered" else "delivered"
            for status in ("sent", final):
                params = {**common, "MessageStatus": status, "SmsStatus": status}
                if status == "undelivered":
                    params["ErrorCode"] = "30003"
                self._post(callback, params)
        if self.inbound_url and fate(number) == "replies":
            reply = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": self.account_sid,
                "From": number,
                "To": "+15005550006",
                "Body": "STOP",
                "NumMedia": "0",
                "SmsStatus": "received",
                "ApiVersion": "2010-04-01",
            }
            self._post(self.inbound_url, reply, later=0.5)

    def _post(self, url: str, params: dict[str, str], later: float = 0.0) -> None:
        signature = signature_for(url, params, self.auth_token)
        self.poster.post(url, data=params, headers={"X-Twilio-Signature": signature}, later=later)


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
