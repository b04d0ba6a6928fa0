"""What each API route requires: an OAuth scope plus one of the tenant's realm roles, else 401
USER_PERMISSION_FAILURE; and the tenant headers every API route documents.

A route declares its requirement through its decorator (`@get(**requires(...))` or `@get(**AUTHENTICATED)`), and
the authentication middleware enforces it for every route of the API router. A route that declares nothing is
refused (fail closed). This replaces Litestar guards, which copy the route handler on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema

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


def _header(name: str, schema: Schema, description: str, *, required: bool) -> Parameter:
    # Litestar documented these with the description on the parameter and its schema alike; kept as it was.
    schema.description = description
    return Parameter(name=name, param_in=ParamType.HEADER, required=required, schema=schema, description=description)


# The headers the authentication middleware reads on every API request. They are documented on each operation
# rather than declared as Litestar parameters, which Litestar would parse and validate a second time per request.
TENANT_HEADERS = (
    _header(
        "x-tenantid",
        Schema(type=OpenAPIType.STRING),
        "UUID of the tenant; must equal the token's tenant claim",
        required=True,
    ),
    _header("realmname", Schema(type=OpenAPIType.STRING), "Name of the realm that issued the token", required=True),
    _header(
        "issupportrequest",
        Schema(type=OpenAPIType.BOOLEAN, default=False),
        "true marks a support request; honoured only for tokens with the tenant's support role",
        required=False,
    ),
)


@dataclass
class TenantScopedOperation(Operation):
    """An API operation: Litestar's own, plus the tenant headers."""

    def __post_init__(self) -> None:
        self.parameters = [*TENANT_HEADERS, *(self.parameters or ())]


def requires(permission: Permission, scope: str, action: str) -> dict[str, Any]:
    """Route decorator arguments for a route that needs `scope` in the token and a realm role granting
    `permission`."""
    requirement = Requirement(permission, scope, f"You do not have the permission to {action}")
    return {"opt": {REQUIREMENT: requirement}, "operation_class": TenantScopedOperation}


# Route decorator arguments for a route any authenticated caller of the tenant may use.
AUTHENTICATED: dict[str, Any] = {
    "opt": {REQUIREMENT: Requirement(None, None, "")},
    "operation_class": TenantScopedOperation,
}
