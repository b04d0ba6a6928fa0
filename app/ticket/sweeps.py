"""Each worker's sweeps over tickets: the pending-close timer, and forgetting expired Idempotency-Keys.

The pending-close timer: tickets whose pending-close time has come move to their state's next state.

Every worker process runs one. A sweep finds the tenants with due tickets and moves each tenant's tickets in
batches (row locks never span tenants, so the SQL routes to one shard on Citus). Sweeps may overlap freely: the
sweep's SQL (CLOSE_DUE) skips tickets another sweep holds and re-checks the rest, so each ticket moves exactly once,
recorded as a status change by "system".
"""

from __future__ import annotations

import datetime
import uuid

from app.idempotency.repository import IdempotencyRepository
from app.ticket.periodic import PeriodicSweep
from app.ticket.repository import TicketRepository

SYSTEM_ACTOR = "system"
NOTE = "pending close time reached"
BATCH = 500


class PendingCloseTimer(PeriodicSweep):
    name = "pending-close-timer"

    def __init__(self, repository: TicketRepository, interval_seconds: float) -> None:
        super().__init__(interval_seconds)
        self._repository = repository

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


class ExpiredIdempotencyKeySweep(PeriodicSweep):
    """Forgets Idempotency-Keys older than their time to live, tenant by tenant, each through the (tenant_id,
    created_at) index (a key found expired before the sweep reaches it is already treated as unused: see
    IdempotencyRepository.claim)."""

    name = "idempotency-key-sweep"

    def __init__(self, keys: IdempotencyRepository, ttl: datetime.timedelta, interval_seconds: float) -> None:
        super().__init__(interval_seconds)
        self._keys = keys
        self._ttl = ttl

    async def sweep(self) -> int:
        expired_before = datetime.datetime.now(datetime.UTC) - self._ttl
        deleted = 0
        for tenant_id in await self._keys.all_tenants():
            deleted += await self._keys.delete_expired(tenant_id, expired_before)
        return deleted
