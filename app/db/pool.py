"""A lean pool of asyncpg connections for the request path.

asyncpg.Pool spends more CPU handing a connection back than our primary-key queries cost: every release runs in a
new shielded Task, re-arms an inactivity timer and calls the reset hooks. The request path keeps no session state
(no SET, no LISTEN, only transaction-scoped advisory locks), so here a connection goes straight back to the idle
list. A connection that may be broken (its user was cancelled mid-query, the server dropped it or shut down) is
closed instead of reused, and the pool opens another on demand.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.db.errors import DatabaseUnavailable

log = logging.getLogger("app.db.pool")

# Failures that leave the connection itself unusable: the socket, the protocol, or the server session is gone.
_BROKEN_CONNECTION = (
    DatabaseUnavailable,  # a statement inside the caller's transaction lost the connection
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ProtocolError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


class PoolClosed(asyncpg.InterfaceError):  # type: ignore[misc]
    """The pool was closed; no more connections are handed out."""


class PoolExhausted(Exception):
    """Every connection stayed in use for the whole acquire timeout: overload, not an outage."""


class ConnectionPool:
    def __init__(self, dsn: str, max_size: int, acquire_timeout: float, settings: dict[str, str] | None = None) -> None:
        self._dsn = dsn
        # Session settings of every connection, beyond the defaults below.
        self._settings = settings or {}
        self._max_size = max_size
        # How long a caller waits for a connection, opening one included, before TimeoutError.
        self._acquire_timeout = acquire_timeout
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[asyncpg.Connection]] = deque()
        self._replacements: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        min_size: int,
        max_size: int,
        acquire_timeout: float = 5.0,
        settings: dict[str, str] | None = None,
    ) -> ConnectionPool:
        pool = cls(dsn, max_size, acquire_timeout, settings)
        try:
            for _ in range(min_size):
                pool._idle.append(await pool._connect())
        except BaseException:
            await pool.close()
            raise
        return pool

    @property
    def size(self) -> int:
        return self._open

    @property
    def idle(self) -> int:
        return len(self._idle)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await self._take()
        try:
            yield connection
        except _BROKEN_CONNECTION:
            self._discard(connection)
            raise
        except Exception:
            # A refused statement or the caller's own failure (a rule it enforces): the connection itself is fine,
            # any transaction was rolled back, and _release still drops it if it is closed or mid-transaction.
            self._release(connection)
            raise
        except BaseException:
            # Cancelled, possibly mid-query: the protocol state is unknown.
            self._discard(connection)
            raise
        else:
            self._release(connection)

    def discard_idle(self) -> None:
        """Close every idle connection; callers get new ones."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.terminate()
            self._open -= 1

    async def close(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(PoolClosed("the connection pool is closed"))
        self._waiters.clear()
        for task in list(self._replacements):
            task.cancel()
        idle, self._idle = self._idle, []
        for connection in idle:
            self._open -= 1
            await connection.close(timeout=5)

    async def _connect(self) -> asyncpg.Connection:
        self._open += 1
        try:
            # Named after the worker process, so pg_stat_activity shows which worker holds which connection. No
            # JIT: a list query over a large tenant costs enough to be compiled, which adds ~60 ms to every such
            # request and saves nothing on statements this short (measured on a million tickets).
            return await asyncpg.connect(
                self._dsn,
                timeout=self._acquire_timeout,
                server_settings={"application_name": f"ticketing-{os.getpid()}", "jit": "off", **self._settings},
            )
        except BaseException:
            self._open -= 1
            raise

    async def _take(self) -> asyncpg.Connection:
        if self._closed:
            raise PoolClosed("the connection pool is closed")
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            # The server closed it while idle (a restart, a failover, an administrator): never hand it out.
            self._open -= 1
        if self._open < self._max_size:
            return await self._connect()
        waiter: asyncio.Future[asyncpg.Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._acquire_timeout):
                return await waiter
        except (asyncio.CancelledError, TimeoutError) as exc:
            # Handed a connection in the same instant we were cancelled or timed out: pass it on, never lose it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())
            if isinstance(exc, TimeoutError):
                raise PoolExhausted(
                    f"no connection became free within {self._acquire_timeout:g} s ({self._max_size} in use)"
                ) from None
            raise

    def _release(self, connection: asyncpg.Connection) -> None:
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            self._discard(connection)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _discard(self, connection: asyncpg.Connection) -> None:
        connection.terminate()
        self._open -= 1
        if self._waiters and not self._closed:
            # A request is waiting for the slot this connection held: open a replacement for it.
            task = asyncio.create_task(self._replace())
            self._replacements.add(task)
            task.add_done_callback(self._replacements.discard)

    async def _replace(self) -> None:
        try:
            connection = await self._connect()
        except Exception as exc:
            # Every waiter would otherwise wait for a connection that nobody is going to open.
            # The database boundary logs the outage once; this repeats for every failed replacement.
            log.debug("cannot open a replacement connection", extra={"reason": str(exc)})
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        self._release(connection)
