"""Per-worker cache of compiled ticket types, by prefix and by id, and each tenant's whole list.

Compiling a type (one jsonschema validator per field) happens once per type version per worker. A change anywhere
sends a `ticket_types_changed` notification carrying the tenant id; every worker drops that tenant's entries.
A per-tenant generation counter keeps a read that raced with a change from re-inserting the stale version.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from app.db.notifications import changed_tenant
from app.ticket_type.compiled import CompiledType
from app.ticket_type.dto import definition_decoder
from app.ticket_type.repository import TicketTypeRepository, TicketTypeRow

MAX_ENTRIES = 10_000


class TicketTypeCache:
    def __init__(self, repository: TicketTypeRepository) -> None:
        self._repository = repository
        # (tenant, prefix) and (tenant, type id) share one map: a prefix (str) never equals an id (UUID).
        self._current: dict[tuple[uuid.UUID, str | uuid.UUID], CompiledType | None] = {}
        # Every type of a tenant, archived ones included (the ticket list's field filters and sorts look fields up
        # in them).
        self._all: dict[uuid.UUID, tuple[CompiledType, ...]] = {}
        self._compiled: dict[tuple[uuid.UUID, uuid.UUID, int, bool], CompiledType] = {}
        self._generation: defaultdict[uuid.UUID, int] = defaultdict(int)
        self._epoch = 0  # bumped by a whole-cache invalidation

    async def on_change(self, payload: str) -> None:
        """Notification handler: the payload is the tenant whose types changed, or empty for "all"."""
        self.invalidate(changed_tenant(payload))

    def invalidate(self, tenant_id: uuid.UUID | None = None) -> None:
        if tenant_id is None:
            self._epoch += 1
            self._current.clear()
            self._all.clear()
            return
        self._generation[tenant_id] += 1
        self._all.pop(tenant_id, None)
        for key in [k for k in self._current if k[0] == tenant_id]:
            del self._current[key]

    async def by_prefix(self, tenant_id: uuid.UUID, prefix: str) -> CompiledType | None:
        return await self._lookup(tenant_id, prefix, lambda: self._repository.get_by_prefix(tenant_id, prefix))

    async def by_id(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> CompiledType | None:
        return await self._lookup(tenant_id, type_id, lambda: self._repository.get(tenant_id, type_id))

    async def all_types(self, tenant_id: uuid.UUID) -> tuple[CompiledType, ...]:
        """The tenant's types, archived ones included, each at its current version."""
        known = self._all.get(tenant_id)
        if known is not None:
            return known
        generation = (self._epoch, self._generation[tenant_id])
        rows = await self._repository.list_all(tenant_id, include_archived=True)
        compiled = tuple(c for c in (self._compile(tenant_id, row) for row in rows) if c is not None)
        if generation == (self._epoch, self._generation[tenant_id]):
            if len(self._all) > MAX_ENTRIES:
                self._all.clear()
            self._all[tenant_id] = compiled
        return compiled

    async def _lookup(
        self, tenant_id: uuid.UUID, value: str | uuid.UUID, fetch: Callable[[], Awaitable[TicketTypeRow | None]]
    ) -> CompiledType | None:
        key = (tenant_id, value)
        if key in self._current:
            return self._current[key]
        generation = (self._epoch, self._generation[tenant_id])
        compiled = self._compile(tenant_id, await fetch())
        # A change that happened while we read may have made this the old version: then do not keep it.
        if generation == (self._epoch, self._generation[tenant_id]):
            if len(self._current) > MAX_ENTRIES:
                self._current.clear()
            self._current[key] = compiled
        return compiled

    def _compile(self, tenant_id: uuid.UUID, row: TicketTypeRow | None) -> CompiledType | None:
        if row is None:
            return None
        key = (tenant_id, row.id, row.version, row.archived_at is not None)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) > MAX_ENTRIES:
                self._compiled.clear()
            definition = definition_decoder.decode(row.definition)
            compiled = CompiledType.compile(tenant_id, row.id, row.version, key[3], definition)
            self._compiled[key] = compiled
        return compiled
