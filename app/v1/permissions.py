"""Seed 003's permission names (admin.object, ticket.agent, ticket.customer) as the tenant's realm roles: the
tenant file's [v1.permissions], each name defaulting to the roles v2 gives the same work."""

from __future__ import annotations

from typing import Any

from litestar import Request

from app.auth.principal import Principal
from app.tenancy.registry import TenantRegistry
from app.v1.errors import V1Error
from app.v1.routes import SEED_PERMISSIONS


class SeedPermissions:
    def __init__(self, registry: TenantRegistry) -> None:
        self._registry = registry

    def __deepcopy__(self, memo: dict[int, Any]) -> SeedPermissions:
        # Litestar deep-copies a router's hooks when registering it; the registry is one process-wide object.
        return self

    def roles(self, principal: Principal, permission: str) -> frozenset[str]:
        tenant = self._registry.tenant(principal.tenant_id)
        if tenant is None:
            return frozenset()
        configured = dict(tenant.config.v1.permissions).get(permission)
        if configured is not None:
            return frozenset(configured)
        defaults = {
            "admin.object": tenant.admin_roles,
            "ticket.agent": tenant.read_roles | tenant.write_roles | tenant.admin_roles,
            "ticket.customer": tenant.customer_roles,
        }
        return defaults[permission]

    def require(self, principal: Principal, *permissions: str) -> None:
        """403 unless the caller holds a role of one of the permissions."""
        if not any(principal.roles & self.roles(principal, permission) for permission in permissions):
            raise V1Error(403, "FORBIDDEN", "Not authorized")

    async def check_route(self, request: Request[Principal, Any, Any]) -> None:
        """The v1 router's before-request hook: a route that names seed permissions (v1_requires) needs one of
        them; checked before the request's body and parameters are read, so who may call is decided first."""
        permissions = request.route_handler.opt.get(SEED_PERMISSIONS)
        if permissions:
            self.require(request.user, *permissions)
