"""A webhook receiver for the tests (and the benchmark): a real HTTP server on loopback, in a thread of its own so it
answers whatever the test's event loop is doing. It records every request and answers from a script (status codes,
Retry-After), and can be stopped and started again on the same port (connection refused meanwhile)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from tests.support import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.time() when it arrived

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> dict[str, Any]:
        """The body, once the third-party verifier has accepted its signature for `secret` (raises otherwise)."""
        document: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return document


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b"ok"


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[Received] = []
        self.script: deque[Answer] = deque()
        self.default = Answer()
        # Cleared: requests are recorded, then held unanswered until it is set again.
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # As real receivers (Go's net/http, nginx) do: without it, the answer's head and body go out as two
            # segments and the second waits for the sender's delayed ACK (up to 40 ms a delivery).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    answer = receiver.script.popleft() if receiver.script else receiver.default
                    receiver.requests.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body, answer.status, time.time())
                    )
                receiver.gate.wait()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers:
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    self.close_connection = True  # the sender is gone (killed while we held its request)

            def log_message(self, *_: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start` again."""
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.script.extend(answers)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def delivered(self) -> list[Received]:
        """The requests it answered with a 2xx."""
        return [request for request in self.received() if 200 <= request.status < 300]

    async def wait_for(self, count: int, *, within: float = 20.0, successful: bool = True) -> list[Received]:
        """Wait until at least `count` requests (answered 2xx, unless not `successful`) have arrived."""
        deadline = time.monotonic() + within
        while True:
            got = self.delivered() if successful else self.received()
            if len(got) >= count:
                return got
            assert time.monotonic() < deadline, f"{len(got)} of {count} webhook requests arrived: {got}"
            await asyncio.sleep(0.02)

    async def wait_for_message(self, webhook_id: str, *, within: float = 20.0) -> Received:
        """Wait until the message `webhook_id` has arrived and been answered with a 2xx; its first such request."""
        deadline = time.monotonic() + within
        while True:
            for request in self.delivered():
                if request.webhook_id == webhook_id:
                    return request
            assert time.monotonic() < deadline, f"{webhook_id} did not arrive: {self.received()}"
            await asyncio.sleep(0.02)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
