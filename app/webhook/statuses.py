"""The status values webhook bodies show: seed 004's (open, in_progress, resolved, closed), as /api/v1/tickets shows
them, by each tenant's file ([v1.platform.statuses], seed 003's default state names unless it says otherwise)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from app.tenancy.model import V1PlatformMapping, tenant_config_decoder
from app.tenancy.repository import TenantRepository

_DEFAULT = V1PlatformMapping().status_of_state()


class TenantStatuses:
    """Each tenant's state name (in lower case) to seed 004 status, for the events of one dispatch batch or replay:
    the tenant's configuration hash is read each time (a file synced by another process counts at once), its document
    decoded again only when that hash changed."""

    def __init__(self, tenants: TenantRepository) -> None:
        self._tenants = tenants
        self._known: dict[uuid.UUID, tuple[str, dict[str, str]]] = {}

    async def of(self, tenant_id: uuid.UUID) -> Mapping[str, str]:
        cached = self._known.get(tenant_id)
        found = await self._tenants.config_if_changed(tenant_id, cached[0] if cached is not None else None)
        if found is None:  # a tenant purged meanwhile: its events go nowhere, any answer will do
            self._known.pop(tenant_id, None)
            return _DEFAULT
        if found.config is None:  # unchanged: only a cached entry's hash is ever asked about
            assert cached is not None
            return cached[1]
        statuses = tenant_config_decoder.decode(found.config).v1.platform.status_of_state()
        self._known[tenant_id] = (found.config_hash, statuses)
        return statuses
