"""Limits at the edge: how long a connection may take to send a request's headers and body, and how large a body
may be.

The deadlines are part of the HTTP server (a uvicorn protocol); an oversized body is refused before routing
from its declared Content-Length, and bodies without one (chunked) are capped by Litestar's request_max_body_size
as they are read. A route that streams large bodies (file uploads) names its own, larger limit per request, and
enforces it itself as the body arrives; every other route keeps MAX_BODY_BYTES.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.errors import ErrorBody, encode_error

PAYLOAD_TOO_LARGE = 413


# A body arriving more slowly than this on average, after the first `body_timeout` seconds, is cut off (as Apache's
# mod_reqtimeout does with MinRate): 500 bytes a second (4 kbit/s) is far below any working link, so a large upload
# that keeps flowing is never cut, while a body trickled a byte at a time ends soon after the timeout.
MIN_BODY_BYTES_PER_SECOND = 500.0


class RequestDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus deadlines for each request's headers and body.

    uvicorn arms no timer on a new connection, and the first byte that arrives cancels its keep-alive timer, so a
    connection that never completes a request (idle from the start, trickling a header: slowloris, or sending only
    part of its body) was held for ever, with a handler task waiting on the body.

    Headers: they must be complete within `header_timeout` seconds: the first request's counted from the connection
    being accepted, a later one's from its first byte (idle time between requests stays under uvicorn's keep-alive
    timeout). Bytes after a response that are not yet a new request's headers, such as the rest of a refused body
    that is being discarded, are on the same clock. When the time is up the connection is closed, or, with a
    response still being written, closed after it.

    Body: while a request's body is incomplete, the connection is closed when no bytes arrive for `body_timeout`
    seconds, or when the body has taken longer than `body_timeout` seconds plus one second per
    MIN_BODY_BYTES_PER_SECOND bytes received. Not a deadline for the whole body: an upload of any size the body limit
    allows goes through on a slow link as long as it keeps flowing. Not an idle timeout alone either: a byte every
    few seconds would hold the connection and its handler task for days. The handler then sees the client gone
    (Litestar raises "client disconnected prematurely", logged as a client disconnect). While uvicorn has paused
    reading because the handler has not consumed what arrived, or a client that sent `Expect: 100-continue` waits
    for the handler to ask for the body, the server is the slow one, and the clock restarts.

    Cost per request: an attribute check or two after each read, plus one timer per connection cancelled by its
    first request. A header timer is armed again only while headers arrive in pieces, a body timer only while a
    body does; a body's later reads only move two numbers, and the timer re-arms itself lazily when it fires early.
    """

    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_timeout = body_timeout
        self._body_deadline: asyncio.TimerHandle | None = None
        self._body_cycle: RequestResponseCycle | None = None  # the request whose body is on the clock
        # Loop times by which the incomplete body must have sent its next byte, and all of itself at the minimum rate.
        self._body_idle_until = 0.0
        self._body_slow_after = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(self._header_timeout, self._header_deadline_passed)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        # uvicorn makes a request's cycle (with the scope the parser is filling) once its headers are complete.
        if cycle is not None and cycle.scope is self.scope and not cycle.response_complete:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None
            if cycle.more_body:
                self._body_bytes_arrived(cycle, len(data))
        elif self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self._header_timeout, self._header_deadline_passed)

    def connection_lost(self, exc: Exception | None) -> None:
        for deadline in (self._header_deadline, self._body_deadline):
            if deadline is not None:
                deadline.cancel()
        self._header_deadline = self._body_deadline = None
        super().connection_lost(exc)

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        self.shutdown()  # uvicorn's graceful close: now if no response is under way, else once it is written

    def _body_bytes_arrived(self, cycle: RequestResponseCycle, count: int) -> None:
        now = self.loop.time()
        self._body_idle_until = now + self._body_timeout
        if cycle is not self._body_cycle:
            # The first read of this body (it may carry the end of the headers too: a few hundred bytes of credit).
            self._body_cycle = cycle
            self._body_slow_after = now + self._body_timeout
            if self._body_deadline is None:  # else an earlier body's timer is pending: it re-arms for this one
                self._body_deadline = self.loop.call_later(self._body_timeout, self._body_deadline_passed)
        self._body_slow_after += count / MIN_BODY_BYTES_PER_SECOND

    def _body_deadline_passed(self) -> None:
        self._body_deadline = None
        cycle = self.cycle
        if (
            cycle is not self._body_cycle
            or cycle.scope is not self.scope
            or cycle.response_complete
            or not cycle.more_body
        ):
            # The body is complete, or was answered without being read (the header deadline applies to the rest).
            self._body_cycle = None
            return
        now = self.loop.time()
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # Waiting for the handler to take what arrived, or to ask for the body (a client that sent
            # `Expect: 100-continue` sends it only then): the client is not the slow one.
            self._body_idle_until = now + self._body_timeout
            self._body_slow_after = max(self._body_slow_after, now + self._body_timeout)
        due = min(self._body_idle_until, self._body_slow_after)
        if now < due:
            self._body_deadline = self.loop.call_later(due - now, self._body_deadline_passed)
        else:
            self.transport.close()


def http_protocol(header_timeout_seconds: float, body_timeout_seconds: float) -> type[asyncio.Protocol]:
    """What to pass uvicorn as `http`. uvicorn only calls it, with keyword arguments, so a partial that binds the
    timeouts will do; unlike a class made at run time, it pickles into worker processes."""
    protocol = functools.partial(
        RequestDeadlineProtocol, header_timeout=header_timeout_seconds, body_timeout=body_timeout_seconds
    )
    return cast("type[asyncio.Protocol]", protocol)


class BodySizeLimitMiddleware:
    """Answers 413 at once to a request whose declared Content-Length is over the limit, without reading the body.

    The connection is kept alive rather than closed: uvicorn then reads and discards the rest of the body, as it
    does for any body a response left unread, and the client reads the 413 and may send its next request on the
    same connection. Closing it instead, with the body still arriving, makes the kernel answer with a reset that
    can destroy the 413 before the client reads it. How long the discarding may last is bounded by the request
    header deadline (RequestDeadlineProtocol): bytes after a response count as waiting for the next request.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, larger_limit: Callable[[Scope], int | None] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # The few routes that take larger bodies (streamed file uploads) name their own limit for a request; None
        # for every other request. Asked only about a body over max_body_bytes.
        self._larger_limit = larger_limit
        self._body = _too_large(max_body_bytes)
        self._headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self._body)).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
                body, headers = self._body, self._headers
                if not declared.isdigit():
                    # Where the body ends is unknown (the server normally refuses this first), so nothing after it
                    # can be read as a request.
                    headers = [*headers, (b"connection", b"close")]
                elif self._larger_limit is not None and (limit := self._larger_limit(scope)) is not None:
                    if int(declared) <= limit:
                        await self.app(scope, receive, send)
                        return
                    body = _too_large(limit)
                    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": PAYLOAD_TOO_LARGE, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await self.app(scope, receive, send)


def _too_large(limit: int) -> bytes:
    return encode_error(
        ErrorBody(
            error=True,
            code="PAYLOAD_TOO_LARGE",
            message=f"Request body is larger than the limit of {limit} bytes",
            status=PAYLOAD_TOO_LARGE,
        )
    )
