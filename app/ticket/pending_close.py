"""The pending-close timer: tickets whose pending-close time has come move to their state's next state.

Every worker process runs one. A sweep finds the tenants with due tickets and moves each tenant's tickets in
batches (row locks never span tenants, so the SQL routes to one shard on Citus). Sweeps may overlap freely: the
sweep's SQL (CLOSE_DUE) skips tickets another sweep holds and re-checks the rest, so each ticket moves exactly once,
recorded as a status change by "system".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from app.db.errors import DatabaseUnavailable
from app.ticket.repository import TicketRepository

log = logging.getLogger("app.ticket.pending_close")

SYSTEM_ACTOR = "system"
NOTE = "pending close time reached"
BATCH = 500


class PendingCloseTimer:
    def __init__(self, repository: TicketRepository, interval_seconds: float) -> None:
        self._repository = repository
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pending-close-timer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def sweep(self) -> int:
        """Move every ticket that is due now; returns how many moved."""
        moved = 0
        for tenant_id in await self._repository.tenants_with_due_tickets():
            while True:
                # One request id per batch: the history shows which tickets one sweep moved together.
                batch_id = uuid.uuid4()
                count = await self._repository.close_due(
                    tenant_id, BATCH, batch_id, SYSTEM_ACTOR, f"pending-close-{batch_id}", NOTE
                )
                moved += count
                if count < BATCH:
                    break
        return moved

    async def _run(self) -> None:
        while True:
            try:
                moved = await self.sweep()
                if moved:
                    log.info("pending-close tickets moved", extra={"count": moved})
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable:
                # Logged once per outage by the database boundary; the next sweep catches up.
                pass
            except Exception:
                log.exception("pending-close sweep failed")
            await asyncio.sleep(self._interval)
