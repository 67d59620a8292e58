"""A threaded HTTP server on loopback for a fake provider, and tidings' own app served by
uvicorn in a thread so the fakes can post callbacks to it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine

from tidings.app import create_app
from tidings.config import Settings

# (method, path with query, headers with lower-case names, body) -> (status, headers, body)
Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # connections waiting to be accepted, as a real server allows
    daemon_threads = True


class LoopbackServer:
    """Serves `handler` on 127.0.0.1 in a thread until closed."""

    def __init__(self, handler: Handler) -> None:
        outer = handler

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real providers answer

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, extra, answer = outer(self.command, self.path, headers, body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), _Request)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class HooksServer:
    """tidings' application on `engine`, served by uvicorn on loopback."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        app = create_app(engine)
        app.state.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> HooksServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the hooks server did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class CallbackPoster:
    """Posts a fake provider's callbacks from a background thread, as a provider would,
    and keeps every answer so tests can check the acknowledgements."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay  # seconds between the provider's answer and its callback
        self.answers: list[httpx.Response] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def post(self, url: str, *, later: float = 0.0, **options: Any) -> None:
        """Posts to `url` after the usual delay plus `later` seconds (a member's reply
        comes after the message reached the handset)."""

        def run() -> None:
            time.sleep(self.delay + later)
            response = httpx.post(url, timeout=30, **options)
            with self._lock:
                self.answers.append(response)

        thread = threading.Thread(target=run, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def drain(self) -> list[httpx.Response]:
        """Waits for every callback posted so far and returns the answers."""
        while True:
            with self._lock:
                pending = [t for t in self._threads if t.is_alive()]
            if not pending:
                break
            for thread in pending:
                thread.join(timeout=30)
        with self._lock:
            return list(self.answers)


def fate(phone: str) -> str:
    """What every fake provider does with a number, by its last digit."""
    return {
        "7": "invalid",  # refused at once: not a valid number
        "8": "throttled",  # throttled on the first try, then accepted and delivered
        "9": "undelivered",  # accepted, then reported undelivered
        "5": "replies",  # delivered, and the member writes back
    }.get(phone[-1], "delivered")
