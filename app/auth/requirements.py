"""What each API route requires: an OAuth scope plus one of the tenant's realm roles, else 401
USER_PERMISSION_FAILURE.

A route declares its requirement in its `opt` (`opt=requires(...)` or `opt=AUTHENTICATED`), and the authentication
middleware enforces it for every route of the API router. A route that declares nothing is refused (fail closed).
This replaces Litestar guards, which copy the route handler on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection

from app.auth.principal import Permission, Principal
from app.errors import PermissionDenied

READ_SCOPE = "tickets:read"
WRITE_SCOPE = "tickets:write"
ADMIN_SCOPE = "tickets:admin"
REQUIREMENT = "requirement"


@dataclass(frozen=True, slots=True)
class Requirement:
    permission: Permission | None
    scope: str | None
    message: str

    def check(self, principal: Principal) -> None:
        if self.scope is not None and self.scope not in principal.scopes:
            raise PermissionDenied(self.message)
        if self.permission is not None and self.permission not in principal.permissions:
            raise PermissionDenied(self.message)


def requires(permission: Permission, scope: str, action: str) -> dict[str, Any]:
    """Route `opt` for a route that needs `scope` in the token and a realm role granting `permission`."""
    return {REQUIREMENT: Requirement(permission, scope, f"You do not have the permission to {action}")}


# Route `opt` for a route any authenticated caller of the tenant may use.
AUTHENTICATED: dict[str, Any] = {REQUIREMENT: Requirement(None, None, "")}


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        # Only reachable if a route were mounted outside the authenticated router: fail closed.
        raise PermissionDenied("Authentication is required for this route")
    return principal
