"""A loopback regional SMS aggregator with its own JSON API, the kind the generic HTTP
provider is configured for: an API key header, batches of messages, answers per message,
and receipt and reply pushes signed with a hex HMAC-SHA256 of the body."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from .servers import CallbackPoster, LoopbackServer, fate


class FakeGateway(LoopbackServer):
    """The aggregator: the first request meets a 503, later ones are answered per message."""

    def __init__(self, *, api_key: str, callback_secret: str) -> None:
        super().__init__(self.handle)
        self.api_key, self.callback_secret = api_key, callback_secret
        self.callback_url: str | None = None
        self.poster = CallbackPoster()
        self.handsets: dict[str, list[str]] = {}
        self.batches: list[int] = []  # messages per request answered
        self.unavailable_once = True
        self._throttled: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if headers.get("x-api-key") != self.api_key:
            return _json(401, {"code": 401, "error": "BAD_KEY"})
        with self._lock:
            if self.unavailable_once:
                self.unavailable_once = False
                return _json(503, {"code": 503, "error": "MAINTENANCE"})
        request = json.loads(body)
        if path != "/sms/batch" or request.get("account") != "shop":
            return _json(400, {"code": 400, "error": "BAD_REQUEST"})
        results = [self._one(item) for item in request["messages"]]
        with self._lock:
            self.batches.append(len(results))
        self._push(request["messages"], results)
        return _json(200, {"code": 0, "results": results})

    def _one(self, item: dict[str, Any]) -> dict[str, Any]:
        number = str(item["mobile"])
        with self._lock:
            if fate(number) == "invalid":
                return {"status": "101", "error": "BAD_NUMBER"}
            if fate(number) == "throttled" and number not in self._throttled:
                self._throttled.add(number)
                return {"status": "THROTTLED"}
            self.handsets.setdefault(number, []).append(str(item["content"]))
            return {"status": "0", "msgid": f"gw-{next(self._ids)}", "ref": item["ref"]}

    def _push(self, sent: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        if self.callback_url is None:
            return
        done = datetime.now(UTC).isoformat()
        reports, mo = [], []
        for item, result in zip(sent, results, strict=True):
            if result["status"] != "0":
                continue
            failed = fate(str(item["mobile"])) == "undelivered"
            reports.append(
                {
                    "msgid": result["msgid"],
                    "stat": "UNDELIV" if failed else "DELIVRD",
                    "err": "E:402" if failed else "000",
                    "done": done,
                }
            )
            if fate(str(item["mobile"])) == "replies":
                mo.append(
                    {
                        "from": item["mobile"],
                        "text": "R",
                        "moid": f"mo-{result['msgid']}",
                        "time": int(time.time()),
                    }
                )
        if reports:
            self.post_signed({"reports": reports})
        if mo:
            self.post_signed({"mo": mo}, later=0.5)

    def post_signed(self, payload: dict[str, Any], later: float = 0.0) -> None:
        assert self.callback_url is not None
        data = json.dumps(payload).encode()
        digest = hmac.new(self.callback_secret.encode(), data, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Signature": f"sha256={digest}"}
        self.poster.post(self.callback_url, content=data, headers=headers, later=later)


def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
