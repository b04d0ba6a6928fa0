"""A minimal ASGI JSON response for the hottest read path.

Litestar's Response builds a mutable header object and several dicts per response; for GET /ticket that was a
measurable share of the request's CPU. This sends the two ASGI messages directly.
"""

from __future__ import annotations

from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

_JSON = (b"content-type", b"application/json")


class JsonResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, *, status: int = 200, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.body = body
        self.status = status
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = [*self.headers]
        if self.status != 304:
            headers += [_JSON, (b"content-length", str(len(self.body)).encode())]
        start: HTTPResponseStartEvent = {"type": "http.response.start", "status": self.status, "headers": headers}
        await send(start)
        body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": self.body if self.status != 304 else b"",
            "more_body": False,
        }
        await send(body)
