"""Second looks at deliveries queued to wait behind an earlier delivery of their queue.

A delivery waits (next_attempt_at 'infinity') until the statement that ends the turn of the one ahead of it frees it;
a statement that started before the waiting delivery was committed cannot see it, and leaves it waiting behind
nothing (see INSERT_DELIVERIES in the repository). So whoever queues a waiting delivery notes it here once committed,
and it is looked at again when its time comes: LOOK_AGAIN_SECONDS after its commit, every statement that was under
way then has long finished. The dispatcher (which also looks at once, itself) drives its own in its rounds; the
replay and retry routes, which commit through the idempotency wrapper, note theirs in the service process's, which
runs as a sweep. A look that fails is kept for the next; what a process that dies takes with it is left to the
workers' slow sweep (PROMOTE_STRANDED).
"""

from __future__ import annotations

import heapq
import itertools
import time
import uuid

from app.ticket.periodic import PeriodicSweep
from app.webhook.repository import WebhookRepository

LOOK_AGAIN_SECONDS = 2.0
# How often the service process's looks are run (one at once is run within this).
INTERVAL_SECONDS = 0.5


class SecondLooks(PeriodicSweep):
    name = "webhook-second-looks"

    def __init__(self, repository: WebhookRepository) -> None:
        super().__init__(INTERVAL_SECONDS)
        self._repository = repository
        # (when, order noted, tenant, deliveries), soonest first.
        self._due: list[tuple[float, int, uuid.UUID, list[uuid.UUID]]] = []
        self._order = itertools.count()

    def note(self, tenant_id: uuid.UUID, waiting: list[uuid.UUID], *, after_seconds: float) -> None:
        """Look at these waiting deliveries (already committed) once `after_seconds` have passed."""
        if waiting:
            heapq.heappush(self._due, (time.monotonic() + after_seconds, next(self._order), tenant_id, waiting))

    def noted(self) -> list[tuple[uuid.UUID, list[uuid.UUID]]]:
        """What is still to be looked at, soonest first."""
        return [(tenant_id, waiting) for _, _, tenant_id, waiting in sorted(self._due)]

    async def sweep(self) -> int:
        """Look at every noted batch whose time has come; how many deliveries that freed."""
        freed = 0
        while self._due and self._due[0][0] <= time.monotonic():
            _, _, tenant_id, waiting = self._due[0]
            freed += await self._repository.promote_stranded_among(tenant_id, waiting)
            heapq.heappop(self._due)  # only once looked at: a failed look is kept for the next
        return freed
