"""The request path's connection pool against a real PostgreSQL: reuse, limits, failures, closing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.db.pool import ConnectionPool, PoolClosed


@pytest.fixture
async def pool(migrated: str) -> ConnectionPool:
    return await ConnectionPool.open(migrated, 1, 2)


async def backend_pid(pool: ConnectionPool) -> int:
    pid: int = await pool.fetchval("SELECT pg_backend_pid()")
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
        await pool.fetch("SELECT * FROM no_such_table")
    assert await backend_pid(pool) == first
    await pool.close()


async def test_a_cancelled_query_discards_its_connection(pool: ConnectionPool) -> None:
    first = await backend_pid(pool)
    task = asyncio.create_task(pool.execute("SELECT pg_sleep(5)"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.size == 0
    assert await backend_pid(pool) != first
    await pool.close()


async def test_a_waiter_gets_a_replacement_when_the_holder_fails(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 1, 1)
    holder_ready = asyncio.Event()

    async def failing_holder() -> None:
        async with pool.acquire():
            holder_ready.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("bug in the caller")

    holder = asyncio.create_task(failing_holder())
    await holder_ready.wait()
    waiter = asyncio.create_task(backend_pid(pool))
    with pytest.raises(RuntimeError):
        await holder
    assert isinstance(await asyncio.wait_for(waiter, 5), int)
    assert pool.size == 1
    await pool.close()


async def test_an_open_transaction_is_never_handed_on(pool: ConnectionPool) -> None:
    async with pool.acquire() as connection:
        await connection.execute("BEGIN")
    assert pool.size == 0
    assert await pool.fetchval("SELECT 1") == 1
    await pool.close()


async def test_a_closed_pool_refuses_and_fails_its_waiters(migrated: str) -> None:
    pool = await ConnectionPool.open(migrated, 1, 1)
    async with pool.acquire():
        waiter = asyncio.create_task(pool.fetchval("SELECT 1"))
        await asyncio.sleep(0.01)
        await pool.close()
    with pytest.raises(PoolClosed):
        await waiter
    with pytest.raises(PoolClosed):
        await pool.fetchval("SELECT 1")
    assert pool.size == 0
