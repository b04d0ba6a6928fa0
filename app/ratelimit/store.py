"""Rate-limit buckets in Redis: one Lua script decides a whole batch of checks in one round trip, and while Redis is
away requests are served without limits (fail open), with one warning per outage.

Checks that arrive while a round trip is under way wait for it and go together in the next one (like a group
commit), so a busy worker pays one Redis call for many requests, and an idle one answers each at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

log = logging.getLogger("app.ratelimit")

# While Redis is away, it is tried again at most this often (the requests in between do not wait for it).
RETRY_INTERVAL_SECONDS = 1.0
MICROSECONDS = 1_000_000

# GCRA, the generic cell rate algorithm. A bucket holds one number: its theoretical arrival time (TAT), when it will
# be empty again, in microseconds of the Redis server's clock (one clock for every worker and host). A bucket of
# `limit` requests a period refills one request every `interval` microseconds and holds at most `limit` of them.
# ARGV, per check: its number of buckets, then per bucket its limit and interval; KEYS: the buckets, in order.
# A check passes when every one of its buckets has room, and only then counts in each. Per check the reply holds:
# passed (1 or 0); which of its buckets it reports (0-based); that bucket's limit, remaining requests, reset (epoch
# seconds when it is empty again) and, when the check did not pass, the seconds until it would. Passed, it reports
# the bucket with the fewest requests left; refused, the one that keeps it waiting longest.
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local reply = {}
local key = 1
local arg = 1
while arg <= #ARGV do
  local count = tonumber(ARGV[arg])
  arg = arg + 1
  local passed = 1
  local report, report_limit, report_remaining, report_reset, wait = 0, 0, -1, 0, 0
  local tats = {}
  for bucket = 0, count - 1 do
    local limit = tonumber(ARGV[arg])
    local interval = tonumber(ARGV[arg + 1])
    arg = arg + 2
    local tat = tonumber(redis.call('GET', KEYS[key + bucket])) or now
    if tat < now then tat = now end
    local new_tat = tat + interval
    local early = new_tat - now - limit * interval
    tats[bucket] = new_tat
    if early > 0 then
      if passed == 1 or early > wait then
        report, report_limit, report_remaining, report_reset, wait = bucket, limit, 0, tat, early
      end
      passed = 0
    elseif passed == 1 then
      local remaining = math.floor((limit * interval - (new_tat - now)) / interval)
      if report_remaining < 0 or remaining < report_remaining then
        report, report_limit, report_remaining, report_reset = bucket, limit, remaining, new_tat
      end
    end
  end
  if passed == 1 then
    for bucket = 0, count - 1 do
      local ttl = math.ceil((tats[bucket] - now) / 1000)
      redis.call('SET', KEYS[key + bucket], string.format('%d', tats[bucket]), 'PX', ttl)
    end
  end
  key = key + count
  reply[#reply + 1] = passed
  reply[#reply + 1] = report
  reply[#reply + 1] = report_limit
  reply[#reply + 1] = report_remaining
  reply[#reply + 1] = math.ceil(report_reset / 1000000)
  reply[#reply + 1] = math.ceil(wait / 1000000)
end
return reply
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()  # noqa: S324 (Redis names scripts by their SHA-1)
REPLY_WIDTH = 6


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """One check's outcome, as reported for one of its buckets (see GCRA_SCRIPT)."""

    passed: bool
    bucket: int
    limit: int
    remaining: int
    reset: int  # epoch seconds
    retry_after: int  # seconds; 0 when passed


# A check: its bucket keys, and ARGV as GCRA_SCRIPT reads it (the number of buckets, then limit and interval each).
Check = tuple[Sequence[str], Sequence[int]]


def interval_microseconds(limit: int, period_seconds: int) -> int:
    """Whole microseconds between refills, rounded up: `limit` of them never add up to less than the period."""
    return -(-period_seconds * MICROSECONDS // limit)


class RedisBuckets:
    def __init__(self, url: str, *, timeout_seconds: float) -> None:
        # No retries: a request never waits for a Redis that is away, it is served without limits instead.
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._pending: list[tuple[Check, asyncio.Future[Verdict | None]]] = []
        self._sender: asyncio.Task[None] | None = None
        # When the current outage began (monotonic) and when Redis is to be tried again.
        self._unavailable_since: float | None = None
        self._retry_at = 0.0

    async def open(self) -> None:
        """Load the script (a Redis that is away now is tried again by the first requests; start-up goes on)."""
        try:
            await self._redis.script_load(GCRA_SCRIPT)
        except (RedisError, OSError) as exc:
            self._went_away(exc)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        self._answer(self._pending, None)
        self._pending = []
        await self._redis.aclose()

    async def take(self, check: Check) -> Verdict | None:
        """Count one request in the check's buckets; None while Redis is away (the request is not limited)."""
        if self._unavailable_since is not None and time.monotonic() < self._retry_at:
            return None
        future: asyncio.Future[Verdict | None] = asyncio.get_running_loop().create_future()
        self._pending.append((check, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_pending())
        return await future

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                if self._unavailable_since is not None and time.monotonic() < self._retry_at:
                    # Queued behind the round trip that found Redis away: not another wait for it.
                    self._answer(batch, None)
                else:
                    self._answer(batch, await self._decide(batch))
        finally:
            self._sender = None

    async def _decide(self, batch: list[tuple[Check, asyncio.Future[Verdict | None]]]) -> list[Verdict] | None:
        keys: list[str] = []
        args: list[int] = []
        for (check_keys, check_args), _ in batch:
            keys += check_keys
            args += check_args
        try:
            try:
                reply = await self._redis.evalsha(GCRA_SHA, len(keys), *keys, *args)
            except NoScriptError:  # Redis restarted since the script was loaded
                await self._redis.script_load(GCRA_SCRIPT)
                reply = await self._redis.evalsha(GCRA_SHA, len(keys), *keys, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._went_away(exc)
            return None
        if self._unavailable_since is not None:
            log.info(
                "Redis available again; rate limits apply",
                extra={"unavailable_seconds": round(time.monotonic() - self._unavailable_since, 3)},
            )
            self._unavailable_since = None
        return [
            Verdict(bool(reply[at]), reply[at + 1], reply[at + 2], reply[at + 3], reply[at + 4], reply[at + 5])
            for at in range(0, len(reply), REPLY_WIDTH)
        ]

    @staticmethod
    def _answer(batch: list[tuple[Check, asyncio.Future[Verdict | None]]], verdicts: list[Verdict] | None) -> None:
        for index, (_, future) in enumerate(batch):
            if not future.done():  # a request whose client went away was cancelled meanwhile
                future.set_result(None if verdicts is None else verdicts[index])

    def _went_away(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._retry_at = now + RETRY_INTERVAL_SECONDS
        if self._unavailable_since is None:
            self._unavailable_since = now
            log.warning(
                "Redis unavailable; serving requests without rate limits until it is back",
                extra={"reason": f"{exc.__class__.__name__}: {exc}"[:300]},
            )
