"""Route guards: an OAuth scope plus one of the tenant's realm roles, or 401 USER_PERMISSION_FAILURE."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from app.auth.principal import Permission, Principal
from app.errors import PermissionDenied

READ_SCOPE = "tickets:read"
WRITE_SCOPE = "tickets:write"
ADMIN_SCOPE = "tickets:admin"


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        # Only reachable if a route were mounted outside the authenticated router: fail closed.
        raise PermissionDenied("Authentication is required for this route")
    return principal


def require(permission: Permission, scope: str, action: str) -> Guard:
    """A guard for routes that need `scope` in the token and a realm role granting `permission`."""
    message = f"You do not have the permission to {action}"

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if scope not in principal.scopes or permission not in principal.permissions:
            raise PermissionDenied(message)

    return guard
