"""Second looks at deliveries queued to wait behind an earlier delivery of their queue.

A delivery waits (next_attempt_at 'infinity') until the statement that ends the turn of the one ahead of it frees it;
a statement that started before the waiting delivery was committed cannot see it, and leaves it waiting behind
nothing (see INSERT_DELIVERIES in the repository). So whoever queues a waiting delivery notes it here once committed,
and it is looked at again when its time comes: LOOK_AGAIN_SECONDS after its commit, every statement that was under
way then has long finished. The dispatcher (which also looks at once, itself) looks at its own in its rounds; the
replay and retry routes, which commit through the idempotency wrapper, note theirs in the service process's, which
SecondLookSweep runs. A look that fails is tried again a little later, a few times; what is still noted when its
process stops is looked at then, early; what a process that dies takes with it is left to the workers' slow sweep
(PROMOTE_STRANDED).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Callable

from app.ticket.periodic import PeriodicSweep
from app.webhook.repository import WebhookRepository

log = logging.getLogger("app.webhook")

LOOK_AGAIN_SECONDS = 2.0
# A look that fails is tried again this much later, at most this many times in all.
FAILED_LOOK_DELAY_SECONDS = 1.0
LOOK_TRIES = 5
# How often the service process's looks are run (one due at once is run within this).
SWEEP_INTERVAL_SECONDS = 0.5


class SecondLooks:
    def __init__(self, repository: WebhookRepository) -> None:
        self._repository = repository
        # (when, order noted, tenant, deliveries, tries so far), soonest first.
        self._due: list[tuple[float, int, uuid.UUID, list[uuid.UUID], int]] = []
        self._order = itertools.count()

    def note(self, tenant_id: uuid.UUID, waiting: list[uuid.UUID], *, after_seconds: float) -> None:
        """Look at these waiting deliveries (already committed) once `after_seconds` have passed."""
        if waiting:
            self._push(time.monotonic() + after_seconds, tenant_id, waiting, 0)

    def noted(self) -> list[tuple[uuid.UUID, list[uuid.UUID]]]:
        """What is still to be looked at, soonest first."""
        return [(tenant_id, waiting) for _, _, tenant_id, waiting, _ in sorted(self._due)]

    async def look_due(self) -> int:
        """Look at every noted batch whose time has come; how many deliveries that freed. A failed look is noted
        again for later (unless it has been tried LOOK_TRIES times), and its error raised."""
        return await self._look(until=time.monotonic())

    async def look_at_all(self) -> int:
        """Look at everything noted now, due or not (its process is stopping); a look that fails is logged and left
        to the workers' slow sweep."""
        freed = 0
        while self._due:
            _, _, tenant_id, waiting, _ = heapq.heappop(self._due)
            try:
                freed += await self._repository.promote_stranded_among(tenant_id, waiting)
            except Exception:
                log.warning("webhook second look left to the sweep", extra={"tenant": str(tenant_id)}, exc_info=True)
        return freed

    async def _look(self, *, until: float) -> int:
        freed = 0
        while self._due and self._due[0][0] <= until:
            when, _, tenant_id, waiting, tries = heapq.heappop(self._due)
            try:
                freed += await self._repository.promote_stranded_among(tenant_id, waiting)
            except asyncio.CancelledError:
                self._push(when, tenant_id, waiting, tries)  # its process is stopping: looked at with the rest
                raise
            except Exception:
                if tries + 1 < LOOK_TRIES:
                    self._push(time.monotonic() + FAILED_LOOK_DELAY_SECONDS, tenant_id, waiting, tries + 1)
                else:
                    log.warning("webhook second look left to the sweep", extra={"tenant": str(tenant_id)})
                raise
        return freed

    def _push(self, when: float, tenant_id: uuid.UUID, waiting: list[uuid.UUID], tries: int) -> None:
        heapq.heappush(self._due, (when, next(self._order), tenant_id, waiting, tries))


class SecondLookSweep(PeriodicSweep):
    """Runs the service process's second looks (those of its replays and retries); wakes this process's delivery
    worker when they freed anything; looks at what is left when the process stops."""

    name = "webhook-second-looks"

    def __init__(self, looks: SecondLooks, wake: Callable[[], None]) -> None:
        super().__init__(SWEEP_INTERVAL_SECONDS)
        self._looks = looks
        self._wake = wake

    async def sweep(self) -> int:
        freed = await self._looks.look_due()
        if freed:
            self._wake()
        return freed

    async def stop(self) -> None:
        await super().stop()
        await self._looks.look_at_all()
