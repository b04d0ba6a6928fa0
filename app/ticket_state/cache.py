"""Per-worker cache of each tenant's state names and types, so that a ticket names its state without another query
or a join in GET's statement.

A rename or a change of type (or a deletion) sends a `ticket_states_changed` notification carrying the tenant id;
every worker drops that tenant's entry, and the worker that made the change drops it at once. A new state needs no
notice: an id the cache does not know makes it load the tenant's states again, and an id still unknown after that
(a state deleted since a ticket's history named it) is remembered as unknown, since a state's id is never reused.
A per-tenant generation counter keeps a load that raced with a change from keeping the stale names.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Mapping

from app.db.notifications import changed_tenant
from app.ticket_state.repository import StateLabelRow, TicketStateRepository

MAX_TENANTS = 10_000

Labels = Mapping[uuid.UUID, StateLabelRow | None]


class TicketStateCache:
    def __init__(self, repository: TicketStateRepository) -> None:
        self._repository = repository
        self._labels: dict[uuid.UUID, dict[uuid.UUID, StateLabelRow | None]] = {}
        self._generation: defaultdict[uuid.UUID, int] = defaultdict(int)
        self._epoch = 0  # bumped by a whole-cache invalidation

    async def on_change(self, payload: str) -> None:
        """Notification handler: the payload is the tenant whose states changed, or empty for "all"."""
        self.invalidate(changed_tenant(payload))

    def invalidate(self, tenant_id: uuid.UUID | None = None) -> None:
        if tenant_id is None:
            self._epoch += 1
            self._labels.clear()
            return
        self._generation[tenant_id] += 1
        self._labels.pop(tenant_id, None)

    async def label(self, tenant_id: uuid.UUID, state_id: uuid.UUID) -> StateLabelRow | None:
        """One state's name and type (None: it no longer exists). GET's path: one dict look-up when cached."""
        labels = self._labels.get(tenant_id)
        if labels is not None and state_id in labels:
            return labels[state_id]
        return (await self._load(tenant_id, (state_id,)))[state_id]

    async def labels(self, tenant_id: uuid.UUID, state_ids: Collection[uuid.UUID | None]) -> Labels:
        """The tenant's states by id, covering every id of `state_ids` (None for one that no longer exists)."""
        labels = self._labels.get(tenant_id)
        if labels is not None and all(state_id in labels for state_id in state_ids if state_id is not None):
            return labels
        return await self._load(tenant_id, state_ids)

    async def find(self, tenant_id: uuid.UUID, wanted: str) -> StateLabelRow | None:
        """The state with this id, else with this name in any letter case (an id wins over a name); None when the
        tenant has none. A miss reloads the tenant's states once: the state may be newer than the cache."""
        labels = self._labels.get(tenant_id)
        found = _find(labels, wanted) if labels is not None else None
        if found is None:
            found = _find(await self._load(tenant_id, ()), wanted)
        return found

    async def _load(self, tenant_id: uuid.UUID, state_ids: Collection[uuid.UUID | None]) -> Labels:
        generation = (self._epoch, self._generation[tenant_id])
        rows = await self._repository.labels(tenant_id)
        loaded: dict[uuid.UUID, StateLabelRow | None] = {row.id: row for row in rows}
        for state_id in state_ids:
            if state_id is not None:
                loaded.setdefault(state_id, None)
        # A change that happened while we read may have made these the old names: then do not keep them.
        if generation == (self._epoch, self._generation[tenant_id]):
            if len(self._labels) >= MAX_TENANTS:
                self._labels.clear()
            self._labels[tenant_id] = loaded
        return loaded


def _find(labels: Labels, wanted: str) -> StateLabelRow | None:
    try:
        by_id = labels.get(uuid.UUID(wanted))
    except ValueError:
        by_id = None
    if by_id is not None:
        return by_id
    name = wanted.lower()
    return next((label for label in labels.values() if label is not None and label.name.lower() == name), None)
