"""The benchmark's webhook receiver: uvicorn (httptools, uvloop) in a process of its own, answering every POST with
200 and noting when it arrived, the event's `timestamp` (its transaction's time) and its `webhook-id` (the same on a
delivery sent again), which `GET /arrivals?from=n` returns.

The tests' receiver (tests/receiver.py: scripted answers, held requests, signature checks) costs about 0.4 ms of
CPU a request in the benchmark's own Python process, on the same two cores as the server it measures; a receiver
is someone else's machine in production, so the benchmark's should cost as little as a real HTTP server can.

`python -m tests.bench.sink <port>`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import msgspec
import uvicorn

from tests.bench.environment import BenchError, free_port


class _Stamped(msgspec.Struct):
    timestamp: str


_stamp = msgspec.json.Decoder(_Stamped)
_arrivals_encoder = msgspec.json.Encoder()
_arrivals_decoder = msgspec.json.Decoder(list[tuple[float, str, str]])
# (arrival as time.time(), the event's timestamp, its webhook-id) per request, in arrival order.
_arrivals: list[tuple[float, str, str]] = []


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    arrived = time.time()
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        webhook_id = next((value.decode() for name, value in scope["headers"] if name == b"webhook-id"), "")
        _arrivals.append((arrived, _stamp.decode(body).timestamp, webhook_id))
        answer = b"ok"
    else:
        start = int(dict(part.split(b"=", 1) for part in scope["query_string"].split(b"&") if b"=" in part)[b"from"])
        answer = _arrivals_encoder.encode(_arrivals[start:])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


class Sink:
    """The receiver process, started and stopped by the benchmark."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._process: subprocess.Popen[bytes] | None = None
        self._seen: list[tuple[float, str, str]] = []

    def __enter__(self) -> Sink:
        self._process = subprocess.Popen([sys.executable, "-m", "tests.bench.sink", str(self.port)])
        deadline = time.monotonic() + 20
        while True:
            try:
                self.arrivals()
                return self
            except httpx.TransportError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise BenchError("the webhook receiver did not start") from None
                time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

    @property
    def pid(self) -> int:
        """The receiver process's (once started)."""
        if self._process is None:
            raise BenchError("the webhook receiver is not running")
        return self._process.pid

    def arrivals(self) -> list[tuple[float, str, str]]:
        """Every request so far: (arrival, the event's timestamp, its webhook-id)."""
        response = httpx.get(f"http://127.0.0.1:{self.port}/arrivals", params={"from": len(self._seen)}, timeout=10)
        response.raise_for_status()
        self._seen += _arrivals_decoder.decode(response.content)
        return list(self._seen)


if __name__ == "__main__":
    uvicorn.run(
        _app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
