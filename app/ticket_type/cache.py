"""Per-worker cache of compiled ticket types, by prefix and by id.

Compiling a type (one jsonschema validator per field) happens once per type version per worker. A change anywhere
sends a `ticket_types_changed` notification carrying the tenant id; every worker drops that tenant's entries.
A per-tenant generation counter keeps a read that raced with a change from re-inserting the stale version.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import asyncpg

from app.ticket_type.dto import definition_decoder
from app.ticket_type.repository import TicketTypeRepository
from app.ticket_type.validators import CompiledType

MAX_ENTRIES = 10_000


class TicketTypeCache:
    def __init__(self, repository: TicketTypeRepository) -> None:
        self._repository = repository
        self._by_prefix: dict[tuple[uuid.UUID, str], CompiledType | None] = {}
        self._by_id: dict[tuple[uuid.UUID, uuid.UUID], CompiledType | None] = {}
        self._compiled: dict[tuple[uuid.UUID, uuid.UUID, int, bool], CompiledType] = {}
        self._generation: defaultdict[uuid.UUID, int] = defaultdict(int)
        self._epoch = 0  # bumped by a whole-cache invalidation

    async def on_change(self, payload: str) -> None:
        """Notification handler: the payload is the tenant whose types changed, or empty for "all"."""
        try:
            tenant_id = uuid.UUID(payload) if payload else None
        except ValueError:
            tenant_id = None
        self.invalidate(tenant_id)

    def invalidate(self, tenant_id: uuid.UUID | None = None) -> None:
        if tenant_id is None:
            self._epoch += 1
            self._by_prefix.clear()
            self._by_id.clear()
            return
        self._generation[tenant_id] += 1
        for key in [k for k in self._by_prefix if k[0] == tenant_id]:
            del self._by_prefix[key]
        for id_key in [k for k in self._by_id if k[0] == tenant_id]:
            del self._by_id[id_key]

    async def by_prefix(self, tenant_id: uuid.UUID, prefix: str) -> CompiledType | None:
        key = (tenant_id, prefix)
        if key in self._by_prefix:
            return self._by_prefix[key]
        generation = (self._epoch, self._generation[tenant_id])
        compiled = self._compile(tenant_id, await self._repository.get_by_prefix(tenant_id, prefix))
        self._store(generation, tenant_id, compiled, prefix_key=key)
        return compiled

    async def by_id(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> CompiledType | None:
        key = (tenant_id, type_id)
        if key in self._by_id:
            return self._by_id[key]
        generation = (self._epoch, self._generation[tenant_id])
        compiled = self._compile(tenant_id, await self._repository.get(tenant_id, type_id))
        self._store(generation, tenant_id, compiled, id_key=key)
        return compiled

    def _store(
        self,
        generation: tuple[int, int],
        tenant_id: uuid.UUID,
        compiled: CompiledType | None,
        *,
        prefix_key: tuple[uuid.UUID, str] | None = None,
        id_key: tuple[uuid.UUID, uuid.UUID] | None = None,
    ) -> None:
        if generation != (self._epoch, self._generation[tenant_id]):
            return  # the type changed while we read it: do not cache what may be the old version
        if len(self._by_prefix) + len(self._by_id) > MAX_ENTRIES:
            self._by_prefix.clear()
            self._by_id.clear()
        if prefix_key is not None:
            self._by_prefix[prefix_key] = compiled
        if id_key is not None:
            self._by_id[id_key] = compiled

    def _compile(self, tenant_id: uuid.UUID, row: asyncpg.Record | None) -> CompiledType | None:
        if row is None:
            return None
        key = (tenant_id, row["id"], row["version"], row["archived_at"] is not None)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) > MAX_ENTRIES:
                self._compiled.clear()
            definition = definition_decoder.decode(row["definition"])
            compiled = CompiledType.compile(tenant_id, row["id"], row["version"], key[3], definition)
            self._compiled[key] = compiled
        return compiled
