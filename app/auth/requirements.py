"""What each API route requires: an OAuth scope plus one of the tenant's realm roles, else 401
USER_PERMISSION_FAILURE; and the tenant headers every API route documents.

A route declares its requirement through its decorator (`@get(**requires(...))` or `@get(**AUTHENTICATED)`), and
the authentication middleware enforces it for every route of the API router. A route that declares nothing is
refused (fail closed). This replaces Litestar guards, which copy the route handler on every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Operation, Parameter, Reference, Schema

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
    # Whether a customer-level role will do instead of `permission`: the service then limits the caller to the
    # tickets it created (Principal.customer_only).
    customers: bool = False

    def check(self, principal: Principal) -> None:
        if self.scope is not None and self.scope not in principal.scopes:
            raise PermissionDenied(self.message)
        if self.permission is None or self.permission in principal.permissions:
            return
        if self.customers and "customer" in principal.permissions:
            return
        raise PermissionDenied(self.message)


def _header(name: str, schema: Schema, description: str, *, required: bool) -> Parameter:
    # Litestar documented these with the description on the parameter and its schema alike; kept as it was.
    schema.description = description
    return Parameter(name=name, param_in=ParamType.HEADER, required=required, schema=schema, description=description)


# The values the authenticator accepts for issupportrequest (any letter case).
SUPPORT_FLAG_PATTERN = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"

# The headers the authentication middleware reads on every API request. They are documented on each operation
# rather than declared as Litestar parameters, which Litestar would parse and validate a second time per request.
TENANT_HEADERS = (
    _header(
        "x-tenantid",
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID),
        "UUID of the tenant; must equal the token's tenant claim",
        required=True,
    ),
    _header(
        "realmname",
        Schema(type=OpenAPIType.STRING, min_length=1),
        "Name of the realm that issued the token",
        required=True,
    ),
    _header(
        "issupportrequest",
        Schema(type=OpenAPIType.STRING, pattern=SUPPORT_FLAG_PATTERN, default="false"),
        "true or false (in any letter case): true marks a support request, honoured only for tokens with the "
        "tenant's support role",
        required=False,
    ),
)


@dataclass
class TenantScopedOperation(Operation):
    """An API operation: Litestar's own, plus the tenant headers; an optional parameter is documented without Litestar's
    `null` alternative (a parameter is absent or a string, never null)."""

    def __post_init__(self) -> None:
        self.parameters = [*TENANT_HEADERS, *(_not_null(parameter) for parameter in self.parameters or ())]


@dataclass
class PublicOperation(Operation):
    """An operation called without a token (sign-in): its own parameters only, an optional one documented without
    Litestar's `null` alternative."""

    def __post_init__(self) -> None:
        self.parameters = [_not_null(parameter) for parameter in self.parameters or ()]


def _not_null(parameter: Parameter | Reference) -> Parameter | Reference:
    schema = parameter.schema if isinstance(parameter, Parameter) else None
    if isinstance(schema, Schema) and schema.one_of:
        options = [
            option for option in schema.one_of if not (isinstance(option, Schema) and option.type == OpenAPIType.NULL)
        ]
        if len(options) == 1 and isinstance(options[0], Schema):
            assert isinstance(parameter, Parameter)
            parameter.schema = options[0]
            if parameter.description is not None:
                options[0].description = parameter.description
    return parameter


def _documenting(parameters: tuple[Parameter, ...]) -> type[TenantScopedOperation]:
    """An operation class that shows `parameters` in place of the generated parameters of the same name and place."""
    if not parameters:
        return TenantScopedOperation
    documented = {(parameter.name, parameter.param_in): parameter for parameter in parameters}

    @dataclass
    class DocumentedOperation(TenantScopedOperation):
        def __post_init__(self) -> None:
            super().__post_init__()
            generated = self.parameters or []
            known = {(p.name, p.param_in) for p in generated if isinstance(p, Parameter)}
            if not known >= documented.keys():
                raise ValueError(f"documented parameters the route does not take: {set(documented) - known}")
            self.parameters = [
                documented.get((p.name, p.param_in), p) if isinstance(p, Parameter) else p for p in generated
            ]

    return DocumentedOperation


def requires(
    permission: Permission,
    scope: str,
    action: str,
    *,
    documented: Sequence[Parameter] = (),
    customers: bool = False,
) -> dict[str, Any]:
    """Route decorator arguments for a route that needs `scope` in the token and a realm role granting
    `permission` (or, with `customers`, a customer-level role). `documented` parameters replace the generated
    documentation of the route's own parameters of the same name: for parameters the handler takes leniently so
    that its own check can report them in the contract's shape, they state what that check enforces."""
    requirement = Requirement(permission, scope, f"You do not have the permission to {action}", customers)
    return {"opt": {REQUIREMENT: requirement}, "operation_class": _documenting(tuple(documented))}


# Route decorator arguments for a route any authenticated caller of the tenant may use.
AUTHENTICATED: dict[str, Any] = {
    "opt": {REQUIREMENT: Requirement(None, None, "")},
    "operation_class": TenantScopedOperation,
}
