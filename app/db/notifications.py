"""LISTEN on PostgreSQL channels over one dedicated connection, reconnecting when it drops.

A handler receives the notification's payload. After every (re)connect each handler runs once with an empty
payload, meaning "anything may have changed", because notifications sent while we were disconnected are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from app.db.errors import DatabaseUnavailable

log = logging.getLogger("app.db.notifications")

Handler = Callable[[str], Awaitable[None]]


class NotificationListener:
    def __init__(self, dsn: str, handlers: dict[str, Handler], *, retry_seconds: float = 2.0) -> None:
        self._dsn = dsn
        self._handlers = handlers
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notification-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._pending):
            task.cancel()

    def _dispatch(self, channel: str, payload: str) -> None:
        task = asyncio.create_task(self._call(channel, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _call(self, channel: str, payload: str) -> None:
        try:
            await self._handlers[channel](payload)
        except DatabaseUnavailable:
            pass  # logged once per outage by the database boundary; the reconnect's catch-up call runs it again
        except Exception:
            log.exception("notification handler failed", extra={"channel": channel})

    async def _run(self) -> None:
        failing = False  # retries during one outage are logged once, at its start
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn)
                if failing:
                    log.warning("notification listener reconnected")
                    failing = False
                closed = asyncio.Event()
                connection.add_termination_listener(lambda _, closed=closed: closed.set())
                for channel in self._handlers:
                    await connection.add_listener(channel, lambda _c, _p, ch, payload: self._dispatch(ch, payload))
                # Also on the first connect: a change made between start-up's own load and LISTEN is not lost.
                for channel in self._handlers:
                    self._dispatch(channel, "")
                await closed.wait()
                log.warning("notification connection lost; reconnecting")
            except asyncio.CancelledError:
                if connection is not None:
                    await connection.close(timeout=2)
                raise
            except Exception as exc:  # any failure must end in a retry, never in a silently dead listener
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "notification listener failed; retrying",
                    extra={"reason": f"{exc.__class__.__name__}: {exc}"},
                )
                failing = True
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(self._retry)


def changed_tenant(payload: str) -> uuid.UUID | None:
    """The tenant a "changed" notification names, or None for "all tenants" (an empty or unreadable payload)."""
    try:
        return uuid.UUID(payload) if payload else None
    except ValueError:
        return None
