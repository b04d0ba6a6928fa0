"""Refuses oversized request bodies at the edge, before routing, from their declared Content-Length.

Bodies without a Content-Length (chunked) are capped by Litestar's request_max_body_size as they are read.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from app.errors import ErrorBody, encode_error

PAYLOAD_TOO_LARGE = 413


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._body = encode_error(
            ErrorBody(
                error=True,
                code="PAYLOAD_TOO_LARGE",
                message=f"Request body is larger than the limit of {max_body_bytes} bytes",
                status=PAYLOAD_TOO_LARGE,
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
                await send(
                    {
                        "type": "http.response.start",
                        "status": PAYLOAD_TOO_LARGE,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(self._body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": self._body, "more_body": False})
                return
        await self.app(scope, receive, send)
