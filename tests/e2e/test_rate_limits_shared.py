"""Rate limits hold however many processes serve (issue 12): two `python -m app serve` processes counting in one
Redis let exactly the plan's requests through between them; and when Redis goes away mid-run, requests are still
served (without limits), the outage is logged once, and the limits come back with Redis."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.ratelimit.server import PrivateRedis
from tests.support import (
    ME,
    LiveServer,
    Serve,
    TenantFactory,
    TenantSpec,
    auth_headers,
    cli_env,
    free_port,
    make_settings,
    token,
)

# Four requests a minute (one more every 15 s, far slower than this test sends them).
PLAN = 4
REQUESTS = 16
RECOVERY_TIMEOUT = 10.0


async def test_two_service_processes_share_one_limit(
    tenants: list[TenantSpec],
    tenant_factory: TenantFactory,
    database_url: str,
    redis_url: str,
    workspace: Path,
    tmp_path: Path,
) -> None:
    tenant = await tenant_factory.fresh("shared", rate_limits={"plan": "tight", "plans": {"tight": PLAN}})
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TENANTS_DIR": str(workspace / "tenants"),
        "DATA_DIR": str(workspace / "data"),
    }
    first_port, second_port = free_port(), free_port()
    with (
        Serve(cli_env(**env, PORT=str(first_port)), first_port, tmp_path) as first,
        Serve(cli_env(**env, PORT=str(second_port)), second_port, tmp_path) as second,
    ):
        headers = auth_headers(tenant, token(tenant, subject="agent-1"))
        async with httpx.AsyncClient(timeout=10) as http:
            # Both at once, alternating between the processes.
            answers = await asyncio.gather(
                *(http.get(f"{(first, second)[n % 2].url}{ME}", headers=headers) for n in range(REQUESTS))
            )
    statuses = Counter(response.status_code for response in answers)
    assert statuses == {200: PLAN, 429: REQUESTS - PLAN}, statuses
    served = sorted(int(r.headers["x-ratelimit-remaining"]) for r in answers if r.status_code == 200)
    assert served == list(range(PLAN))
    # Both processes answered: each alone would have let PLAN through, so the count was one, not two.
    assert {response.url.port for response in answers} == {first_port, second_port}


@pytest.fixture
async def own_redis(workspace: Path) -> AsyncIterator[PrivateRedis]:
    """A Redis server of this test's own: stopping it disturbs no other test."""
    server = PrivateRedis(workspace / f"redis-outage-{uuid.uuid4().hex[:8]}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_requests_are_served_while_redis_is_away_with_one_warning(
    own_redis: PrivateRedis,
    migrated: str,
    workspace: Path,
    tenant_factory: TenantFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.ratelimit")
    settings = make_settings(migrated, workspace, redis_url=own_redis.url)
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        tenant = await tenant_factory.fresh("outage", rate_limits={"plan": "tight", "plans": {"tight": PLAN}})
        headers = auth_headers(tenant, token(tenant, subject="agent-1"))
        before = await http.get(ME, headers=headers)
        assert (before.status_code, before.headers["x-ratelimit-remaining"]) == (200, str(PLAN - 1))

        own_redis.stop()
        during = [await http.get(ME, headers=headers) for _ in range(2 * PLAN)]
        # Served, more than the plan allows, and without rate-limit headers: nothing was counted.
        assert [response.status_code for response in during] == [200] * (2 * PLAN)
        assert not any("x-ratelimit-limit" in response.headers for response in during)
        warnings = [r for r in caplog.records if r.name == "app.ratelimit" and r.levelno >= logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            "Redis unavailable; serving requests without rate limits until it is back"
        ]

        # Back (empty: a restart forgets the counts and the script), and the limits apply again by themselves.
        own_redis.start()
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while "x-ratelimit-limit" not in (after := await http.get(ME, headers=headers)).headers:
            assert after.status_code == 200
            assert time.monotonic() < deadline, "the limits did not come back with Redis"
            await asyncio.sleep(0.05)
        assert (after.status_code, after.headers["x-ratelimit-remaining"]) == (200, str(PLAN - 1))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "app.ratelimit"]
    assert messages == [
        ("WARNING", "Redis unavailable; serving requests without rate limits until it is back"),
        ("INFO", "Redis available again; rate limits apply"),
    ]
