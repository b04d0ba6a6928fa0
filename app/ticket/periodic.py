"""A sweep each worker process runs every few seconds (pending-close tickets, expired idempotency keys).

Sweeps of several workers may overlap: each sweep's SQL is written so that doing the work twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

from app.db.errors import DatabaseUnavailable

log = logging.getLogger("app.ticket.periodic")


class PeriodicSweep(ABC):
    name: str  # for the task and the log

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def sweep(self) -> int:
        """Do the work that is due now; returns how many items it handled."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                handled = await self.sweep()
                if handled:
                    log.info("sweep done", extra={"sweep": self.name, "count": handled})
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable:
                pass  # logged once per outage by the database boundary; the next sweep catches up
            except Exception:
                log.exception("sweep failed", extra={"sweep": self.name})
            await asyncio.sleep(self._interval)
