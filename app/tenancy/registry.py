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

    __slots__ = (
        "admin_roles",
        "comment_roles",
        "config",
        "customer_roles",
        "delete_roles",
        "enabled",
        "id",
        "read_roles",
        "write_roles",
    )

    def __init__(self, config: TenantConfig) -> None:
        self.config = config
        self.id = config.id
        # A disabled tenant stays here, realms and all, so that its tokens are still verified (a forged one is 401
        # as before) and then refused as "Tenant not found" (see Authenticator.authenticate).
        self.enabled = not config.disabled
        self.read_roles = frozenset(config.roles.read)
        self.write_roles = frozenset(config.roles.write)
        self.admin_roles = frozenset(config.roles.admin)
        self.customer_roles = frozenset(config.roles.customer)
        roles = config.roles
        self.comment_roles = frozenset(roles.write + roles.customer if roles.comment is None else roles.comment)
        self.delete_roles = frozenset(roles.admin if roles.delete is None else roles.delete)


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
        # Realms whose tokens this service issues, by name (unique across tenants: the path of their endpoints).
        self._builtin_realms: dict[str, Realm] = {}
        # CORS, for enabled tenants only, as the raw header bytes a request carries: the origins each tenant allows,
        # by its id in the canonical lowercase form of x-tenantid, and every origin some tenant allows.
        self._origins_by_tenant_header: dict[bytes, frozenset[bytes]] = {}
        self._allowed_origins: frozenset[bytes] = frozenset()
        self.generation = 0
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of tenants or realms (in the reload, not in a request)."""
        self._listeners.append(listener)

    def tenant(self, tenant_id: uuid.UUID) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def realm_for_issuer(self, issuer: str) -> Realm | None:
        return self._realms_by_issuer.get(issuer)

    def builtin_realm(self, name: str) -> Realm | None:
        return self._builtin_realms.get(name)

    def tenants(self) -> list[Tenant]:
        return list(self._tenants.values())

    def tenant_allows_origin(self, tenant_header: bytes, origin: bytes) -> bool:
        """Whether the enabled tenant named by an x-tenantid header value allows the browser origin."""
        origins = self._origins_by_tenant_header.get(tenant_header.lower())
        return origins is not None and origin in origins

    def some_tenant_allows_origin(self, origin: bytes) -> bool:
        """Whether any enabled tenant allows the origin (a CORS preflight names no tenant)."""
        return origin in self._allowed_origins

    def realms(self) -> list[Realm]:
        return list(self._realms_by_issuer.values())

    def replace(self, configs: list[TenantConfig]) -> None:
        if {config.id: config for config in configs} == {tenant.id: tenant.config for tenant in self._tenants.values()}:
            # Nothing changed (a reconnect's catch-up reload, a sync that wrote nothing): keep the token cache.
            return
        tenants: dict[uuid.UUID, Tenant] = {}
        realms: dict[str, Realm] = {}
        origins_by_tenant_header: dict[bytes, frozenset[bytes]] = {}
        for config in configs:
            tenant = Tenant(config)
            tenants[config.id] = tenant
            for realm_config in config.realms:
                realms[realm_config.issuer] = Realm(tenant, realm_config)
            if tenant.enabled and config.allowed_origins:
                origins_by_tenant_header[str(config.id).encode()] = frozenset(
                    o.encode() for o in config.allowed_origins
                )
        # Swap whole maps: a request sees either the old or the new registry, never a mixture.
        (
            self._tenants,
            self._realms_by_issuer,
            self._builtin_realms,
            self._origins_by_tenant_header,
            self._allowed_origins,
        ) = (
            tenants,
            realms,
            {realm.config.name: realm for realm in realms.values() if realm.config.builtin},
            origins_by_tenant_header,
            frozenset().union(*origins_by_tenant_header.values()),
        )
        self.generation += 1
        for listener in self._listeners:
            listener()

    async def reload(self, _payload: str = "") -> None:
        self.replace(await self._load())
        log.info(
            "tenant registry loaded",
            extra={
                "tenants": len(self._tenants),
                "disabled": sum(1 for tenant in self._tenants.values() if not tenant.enabled),
                "generation": self.generation,
            },
        )
