"""Throttling of failed sign-ins, under keys the sign-in chooses (an account from an address, an account, an address).

After a number of free failures, each further failure under a key makes the key wait before the next attempt:
1 second, then 2, 4, ... up to a ceiling (a minute for an account, so an attacker can slow a real user down but never
lock them out for long; longer for an address). Attempts while a key waits are refused without being checked or
counted, and a key that has been quiet for FORGET_AFTER starts again from nothing. The check and the count are one
step under the keys' row locks (each attempt counts as a failure until it succeeds), so attempts sent at once take
their turns: no burst gets more than the free failures past the check. A successful sign-in clears the
account's counts, not the address's (a caller with one good password must not reset its guessing budget).

The store is PostgreSQL here (one row per key, shared by every worker), behind `LoginThrottle`, so that it can move
to the rate limiter's store later without the sign-in changing.
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from app.db.database import Database
from app.ticket.periodic import PeriodicSweep
from app.user.repository import LoginFailureRepository

FORGET_AFTER = datetime.timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ThrottleKey:
    key: str
    free_failures: int
    max_delay_seconds: float


class LoginThrottle(Protocol):
    async def attempt(self, tenant_id: uuid.UUID, keys: list[ThrottleKey], now: datetime.datetime) -> int | None:
        """Check and count an attempt under these keys in one step: None when it may go ahead (it is counted as a
        failure in advance, so that attempts sent at once take their turns rather than all passing one check),
        else the seconds until one may (and it is not counted)."""

    async def succeeded(self, tenant_id: uuid.UUID, cleared: list[ThrottleKey], kept: list[ThrottleKey]) -> None:
        """The attempt succeeded: the `cleared` keys' counts are forgotten, the `kept` keys' advance count is taken
        back."""


def delay_seconds(failures: int, key: ThrottleKey) -> float:
    """How long a key waits after its latest failure, with `failures` counted."""
    beyond = failures - key.free_failures
    if beyond <= 0:
        return 0.0
    return float(min(2 ** (beyond - 1), key.max_delay_seconds))


class QuietLoginFailureSweep(PeriodicSweep):
    """Deletes the counts quiet for FORGET_AFTER, which count for nothing any more: a row is made for every email and
    address an attempt names, so without this a spray of made-up emails would grow the table for good."""

    name = "login-failure-sweep"

    def __init__(
        self,
        failures: LoginFailureRepository,
        tenant_ids: Callable[[], Awaitable[list[uuid.UUID]]],
        interval_seconds: float,
    ) -> None:
        super().__init__(interval_seconds)
        self._failures = failures
        # Every tenant's id: each tenant's counts are swept on their own (one shard at a time on Citus).
        self._tenant_ids = tenant_ids

    async def sweep(self) -> int:
        quiet_since = datetime.datetime.now(datetime.UTC) - FORGET_AFTER
        deleted = 0
        for tenant_id in await self._tenant_ids():
            deleted += await self._failures.forget_quiet(tenant_id, quiet_since)
        return deleted


class PostgresLoginThrottle:
    def __init__(self, db: Database, failures: LoginFailureRepository) -> None:
        self._db = db
        self._failures = failures

    async def attempt(self, tenant_id: uuid.UUID, keys: list[ThrottleKey], now: datetime.datetime) -> int | None:
        by_key = {key.key: key for key in keys}
        async with self._db.transaction():
            wait = 0.0
            for row in await self._failures.locked(tenant_id, sorted(by_key), now):
                if row.last_failure_at < now - FORGET_AFTER:
                    continue
                until = row.last_failure_at + datetime.timedelta(
                    seconds=delay_seconds(row.failures, by_key[row.throttle_key])
                )
                wait = max(wait, (until - now).total_seconds())
            if wait > 0:
                return math.ceil(wait)
            await self._failures.record(tenant_id, sorted(by_key), now, now - FORGET_AFTER)
        return None

    async def succeeded(self, tenant_id: uuid.UUID, cleared: list[ThrottleKey], kept: list[ThrottleKey]) -> None:
        for key in cleared:
            await self._failures.forget(tenant_id, key.key)
        for key in kept:
            await self._failures.uncount(tenant_id, key.key)
