"""The in-memory view of all tenants and realms that every request consults. One per worker process.

It is rebuilt from the database at start-up and whenever a `tenants_changed` notification arrives, so
`python -m app tenants sync` takes effect in running workers without a restart.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from app.tenancy.model import RealmConfig, TenantConfig

log = logging.getLogger("app.tenancy")


class Tenant:
    """A tenant with its role mapping turned into sets for per-request checks."""

    __slots__ = ("admin_roles", "config", "id", "read_roles", "write_roles")

    def __init__(self, config: TenantConfig) -> None:
        self.config = config
        self.id = config.id
        self.read_roles = frozenset(config.roles.read)
        self.write_roles = frozenset(config.roles.write)
        self.admin_roles = frozenset(config.roles.admin)


class Realm:
    __slots__ = ("config", "tenant")

    def __init__(self, tenant: Tenant, config: RealmConfig) -> None:
        self.tenant = tenant
        self.config = config


class TenantRegistry:
    def __init__(self, load: Callable[[], Awaitable[list[TenantConfig]]]) -> None:
        # Reads every tenant's configuration (from the tenant table, TenantRepository.configs).
        self._load = load
        self._tenants: dict[uuid.UUID, Tenant] = {}
        self._realms_by_issuer: dict[str, Realm] = {}
        self.generation = 0
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of tenants or realms (in the reload, not in a request)."""
        self._listeners.append(listener)

    def tenant(self, tenant_id: uuid.UUID) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def realm_for_issuer(self, issuer: str) -> Realm | None:
        return self._realms_by_issuer.get(issuer)

    def tenants(self) -> list[Tenant]:
        return list(self._tenants.values())

    def realms(self) -> list[Realm]:
        return list(self._realms_by_issuer.values())

    def replace(self, configs: list[TenantConfig]) -> None:
        if {config.id: config for config in configs} == {tenant.id: tenant.config for tenant in self._tenants.values()}:
            # Nothing changed (a reconnect's catch-up reload, a sync that wrote nothing): keep the token cache.
            return
        tenants: dict[uuid.UUID, Tenant] = {}
        realms: dict[str, Realm] = {}
        for config in configs:
            tenant = Tenant(config)
            tenants[config.id] = tenant
            for realm_config in config.realms:
                realms[realm_config.issuer] = Realm(tenant, realm_config)
        # Swap whole maps: a request sees either the old or the new registry, never a mixture.
        self._tenants, self._realms_by_issuer = tenants, realms
        self.generation += 1
        for listener in self._listeners:
            listener()

    async def reload(self, _payload: str = "") -> None:
        self.replace(await self._load())
        log.info("tenant registry loaded", extra={"tenants": len(self._tenants), "generation": self.generation})
