"""The request path's connection pool against a real PostgreSQL: reuse, limits, failures, closing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from app.db.pool import ConnectionPool, PoolClosed, PoolExhausted


@pytest.fixture
async def pool(migrated: str) -> ConnectionPool:
    return await ConnectionPool.open(migrated, 1, 2)


async def fetch_value(pool: ConnectionPool, sql: str) -> Any:
    async with pool.acquire() as connection:
        return await connection.fetchval(sql)


async def backend_pid(pool: ConnectionPool) -> int:
    pid: int = await fetch_value(pool, "SELECT pg_backend_pid()")
    return pid


async def test_a_released_connection_is_reused(pool: ConnectionPool) -> None:
    first = await backend_pid(pool)
    assert await backend_pid(pool) == first
    assert (pool.size, pool.idle) == (1, 1)
    await pool.close()


async def test_at_most_max_size_connections_and_waiters_are_served_in_turn(pool: ConnectionPool) -> None:
    async def hold() -> int:
        async with pool.acquire() as connection:
            await connection.execute("SELECT pg_sleep(0.05)")
            pid: int = await connection.fetchval("SELECT pg_backend_pid()")
            return pid

    pids = await asyncio.gather(*(hold() for _ in range(6)))
    assert len(set(pids)) == 2
    assert pool.size == 2
    await pool.close()


async def test_a_postgres_error_keeps_the_connection(pool: ConnectionPool) -> None:
    first = await backend_pid(pool)
    with pytest.raises(asyncpg.UndefinedTableError):
        await fetch_value(pool, "SELECT * FROM no_such_table")
    assert await backend_pid(pool) == first
    await pool.close()


async def test_a_cancelled_query_discards_its_connection(pool: ConnectionPool) -> None:
    first = await backend_pid(pool)
    task = asyncio.create_task(fetch_value(pool, "SELECT pg_sleep(5)"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.size == 0
    assert await backend_pid(pool) != first
    await pool.close()


async def test_a_callers_own_failure_hands_the_connection_on(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 1, 1)
    holder_ready = asyncio.Event()
    holder_pid = 0

    async def failing_holder() -> None:
        nonlocal holder_pid
        async with pool.acquire() as connection:
            holder_pid = await connection.fetchval("SELECT pg_backend_pid()")
            holder_ready.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("a rule the caller enforces")

    holder = asyncio.create_task(failing_holder())
    await holder_ready.wait()
    waiter = asyncio.create_task(backend_pid(pool))
    with pytest.raises(RuntimeError):
        await holder
    # Nothing was wrong with the connection: the waiter gets the very same one, no reconnect.
    assert await asyncio.wait_for(waiter, 5) == holder_pid
    assert pool.size == 1
    await pool.close()


async def test_a_waiter_gets_a_replacement_when_the_holders_connection_breaks(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 1, 1)
    holder_ready = asyncio.Event()
    holder_pid = 0

    async def holder_whose_server_session_ends() -> None:
        nonlocal holder_pid
        async with pool.acquire() as connection:
            holder_pid = await connection.fetchval("SELECT pg_backend_pid()")
            holder_ready.set()
            await asyncio.sleep(0.05)
            await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    holder = asyncio.create_task(holder_whose_server_session_ends())
    await holder_ready.wait()
    waiter = asyncio.create_task(backend_pid(pool))
    with pytest.raises((asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError)):
        await holder
    assert await asyncio.wait_for(waiter, 5) != holder_pid
    assert pool.size == 1
    await pool.close()


async def test_an_open_transaction_is_never_handed_on(pool: ConnectionPool) -> None:
    async with pool.acquire() as connection:
        await connection.execute("BEGIN")
    assert pool.size == 0
    assert await fetch_value(pool, "SELECT 1") == 1
    await pool.close()


async def test_a_closed_pool_refuses_and_fails_its_waiters(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 1, 1)
    async with pool.acquire():
        waiter = asyncio.create_task(fetch_value(pool, "SELECT 1"))
        await asyncio.sleep(0.01)
        await pool.close()
    with pytest.raises(PoolClosed):
        await waiter
    with pytest.raises(PoolClosed):
        await fetch_value(pool, "SELECT 1")
    assert pool.size == 0


async def test_the_pool_skips_connections_the_server_closed(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 2, 2)
    sleepers = (fetch_value(pool, "SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(2))
    pids = set(await asyncio.gather(*sleepers))
    admin = await asyncpg.connect(migrated)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))
    finally:
        await admin.close()
    await asyncio.sleep(0.3)  # asyncpg notices the closed sockets
    assert await fetch_value(pool, "SELECT 1") == 1
    await pool.close()


async def test_all_waiters_fail_when_no_replacement_connection_can_be_opened(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 1, 1)
    holder_ready = asyncio.Event()

    async def holder_whose_server_goes_away() -> None:
        async with pool.acquire() as connection:
            holder_ready.set()
            await asyncio.sleep(0.05)
            pool._dsn = "postgresql://nobody@/nowhere?host=/nonexistent"  # the database has gone away
            await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    holder = asyncio.create_task(holder_whose_server_goes_away())
    await holder_ready.wait()
    waiters = [asyncio.create_task(fetch_value(pool, "SELECT 1")) for _ in range(3)]
    with pytest.raises((asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError)):
        await holder
    results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 5)
    assert all(isinstance(result, OSError) for result in results), results
    await pool.close()


async def test_a_caller_waits_at_most_the_acquire_timeout_and_the_pool_stays_usable(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 1, 1, acquire_timeout=0.2)
    async with pool.acquire():
        started = asyncio.get_running_loop().time()
        with pytest.raises(PoolExhausted, match=r"no connection became free within 0.2 s \(1 in use\)"):
            await fetch_value(pool, "SELECT 1")
        assert 0.15 < asyncio.get_running_loop().time() - started < 2
    # The timed-out waiter is gone: the next caller gets the connection at once.
    assert await fetch_value(pool, "SELECT 1") == 1
    assert pool.size == 1
    await pool.close()
