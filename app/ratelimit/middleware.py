"""Counts every authenticated request on the API router against its client's plan, and every write to a ticket
against the ticket's limit, and puts the X-RateLimit-* headers on the answer.

It runs after authentication: a request refused there (no token, a bad one, another tenant's, a missing role) is
not counted and carries no rate-limit headers. Health and the documentation are outside the API router.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.ratelimit.limiter import LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER, RateLimiter

# A write (any method but these) to a route that names a ticket ({object_id}) also counts against that ticket's
# write limit.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_TICKET_PARAMETER = "object_id"
_LIMIT = LIMIT_HEADER.lower().encode()
_REMAINING = REMAINING_HEADER.lower().encode()
_RESET = RESET_HEADER.lower().encode()


class Caller(Protocol):
    """What the limiter needs of the authenticated principal (app.auth's Principal)."""

    @property
    def tenant_id(self) -> uuid.UUID: ...

    @property
    def subject(self) -> str: ...

    @property
    def client_id(self) -> str | None: ...


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller: Caller | None = scope.get("user")
        if caller is None or scope["type"] != ScopeType.HTTP:  # Litestar's own OPTIONS answers take no token
            await self.app(scope, receive, send)
            return
        ticket = None if scope["method"] in _READS else scope["path_params"].get(_TICKET_PARAMETER)
        verdict = await self.limiter.admit(caller.tenant_id, caller.client_id or caller.subject, ticket=ticket)
        if verdict is None:
            await self.app(scope, receive, send)
            return
        added = [
            (_LIMIT, str(verdict.limit).encode()),
            (_REMAINING, str(verdict.remaining).encode()),
            (_RESET, str(verdict.reset).encode()),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)
