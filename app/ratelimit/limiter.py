"""Counts each request against its tenant's plans (the tenant file's [rate_limits]): requests a minute per client,
and, for a write to a ticket, writes a minute to that ticket, in one check of both.

The limiter is a small service: the API's middleware (middleware.py) admits authenticated callers by their client id
or subject; a route without a token (a sign-in) admits its caller by address with `admit_address`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from app.ratelimit.errors import RateLimited
from app.ratelimit.store import Check, RedisBuckets, Verdict, interval_microseconds
from app.tenancy.model import RateLimits

PERIOD_SECONDS = 60
# The bucket a check's verdict reports: the client's, or the ticket's (see GCRA_SCRIPT).
CLIENT_BUCKET = 0

LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"
RESET_HEADER = "X-RateLimit-Reset"


class RateLimiter:
    def __init__(self, buckets: RedisBuckets, limits_of: Callable[[uuid.UUID], RateLimits | None]) -> None:
        self._buckets = buckets
        self._limits_of = limits_of
        # Each tenant's key prefix; the tenant id in braces is a Redis Cluster hash tag, so that a client's and a
        # ticket's buckets of one tenant live on one node, as a multi-key script needs.
        self._prefixes: dict[uuid.UUID, str] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> RateLimiter:
        # Litestar deep-copies middleware arguments when registering a router; the limiter is one shared service.
        return self

    async def admit(self, tenant_id: uuid.UUID, client: str, *, ticket: str | None = None) -> Verdict | None:
        """Count a request of `client` (a client id or subject), and a write to `ticket` if one is named. Raises
        RateLimited when a limit is reached; returns the verdict for the response's headers, or None when the tenant
        is unknown or Redis is away (the request is then not limited)."""
        limits = self._limits_of(tenant_id)
        if limits is None:
            return None
        prefix = self._prefix(tenant_id)
        per_minute = limits.requests_per_minute(client)
        check: Check
        if ticket is None:
            check = ((prefix + "c:" + client,), (1, per_minute, interval_microseconds(per_minute, PERIOD_SECONDS)))
        else:
            writes = limits.ticket_writes_per_minute
            check = (
                (prefix + "c:" + client, prefix + "t:" + ticket),
                (
                    2,
                    per_minute,
                    interval_microseconds(per_minute, PERIOD_SECONDS),
                    writes,
                    interval_microseconds(writes, PERIOD_SECONDS),
                ),
            )
        return self._verdict(await self._buckets.take(check), ticket)

    async def admit_address(self, tenant_id: uuid.UUID, address: str) -> Verdict | None:
        """Count a request from a client address (a route taking no token), against the tenant's default plan."""
        limits = self._limits_of(tenant_id)
        if limits is None:
            return None
        per_minute = limits.plans[limits.plan]
        check = (
            (self._prefix(tenant_id) + "a:" + address,),
            (1, per_minute, interval_microseconds(per_minute, PERIOD_SECONDS)),
        )
        return self._verdict(await self._buckets.take(check), None)

    def _prefix(self, tenant_id: uuid.UUID) -> str:
        prefix = self._prefixes.get(tenant_id)
        if prefix is None:
            prefix = self._prefixes[tenant_id] = f"rl:{{{tenant_id}}}:"
        return prefix

    @staticmethod
    def _verdict(verdict: Verdict | None, ticket: str | None) -> Verdict | None:
        if verdict is None or verdict.passed:
            return verdict
        if verdict.bucket == CLIENT_BUCKET:
            message = f"Rate limit exceeded: {verdict.limit} requests a minute; retry in {verdict.retry_after} s"
        else:
            message = f"Too many writes to ticket {ticket}: {verdict.limit} a minute; retry in {verdict.retry_after} s"
        raise RateLimited(message, {"Retry-After": str(verdict.retry_after), **headers(verdict)})


def headers(verdict: Verdict) -> dict[str, str]:
    return {
        LIMIT_HEADER: str(verdict.limit),
        REMAINING_HEADER: str(verdict.remaining),
        RESET_HEADER: str(verdict.reset),
    }
