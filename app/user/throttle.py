"""Throttling of failed sign-ins, under keys the sign-in chooses (an account from an address, an account, an address).

After a number of free failures, each further failure under a key makes the key wait before the next attempt:
1 second, then 2, 4, ... up to a ceiling (a minute for an account, so an attacker can slow a real user down but never
lock them out for long; longer for an address). Attempts while a key waits are refused without being checked or
counted, and a key that has been quiet for FORGET_AFTER starts again from nothing. A successful sign-in clears the
account's counts, not the address's (a caller with one good password must not reset its guessing budget).

The store is PostgreSQL here (one row per key, shared by every worker), behind `LoginThrottle`, so that it can move
to the rate limiter's store later without the sign-in changing.
"""

from __future__ import annotations

import datetime
import math
import uuid
from dataclasses import dataclass
from typing import Protocol

from app.user.repository import LoginFailureRepository

FORGET_AFTER = datetime.timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ThrottleKey:
    key: str
    free_failures: int
    max_delay_seconds: float


class LoginThrottle(Protocol):
    async def retry_after(self, tenant_id: uuid.UUID, keys: list[ThrottleKey], now: datetime.datetime) -> int | None:
        """Seconds until an attempt under these keys is allowed again, or None when it is allowed now."""

    async def failed(self, tenant_id: uuid.UUID, keys: list[ThrottleKey], now: datetime.datetime) -> None: ...

    async def succeeded(self, tenant_id: uuid.UUID, key: ThrottleKey) -> None: ...


def delay_seconds(failures: int, key: ThrottleKey) -> float:
    """How long a key waits after its latest failure, with `failures` counted."""
    beyond = failures - key.free_failures
    if beyond <= 0:
        return 0.0
    return float(min(2 ** (beyond - 1), key.max_delay_seconds))


class PostgresLoginThrottle:
    def __init__(self, failures: LoginFailureRepository) -> None:
        self._failures = failures

    async def retry_after(self, tenant_id: uuid.UUID, keys: list[ThrottleKey], now: datetime.datetime) -> int | None:
        by_key = {key.key: key for key in keys}
        wait = 0.0
        for row in await self._failures.get(tenant_id, list(by_key)):
            if row.last_failure_at < now - FORGET_AFTER:
                continue
            until = row.last_failure_at + datetime.timedelta(
                seconds=delay_seconds(row.failures, by_key[row.throttle_key])
            )
            wait = max(wait, (until - now).total_seconds())
        return math.ceil(wait) if wait > 0 else None

    async def failed(self, tenant_id: uuid.UUID, keys: list[ThrottleKey], now: datetime.datetime) -> None:
        await self._failures.record(tenant_id, [key.key for key in keys], now, now - FORGET_AFTER)

    async def succeeded(self, tenant_id: uuid.UUID, key: ThrottleKey) -> None:
        await self._failures.forget(tenant_id, key.key)
