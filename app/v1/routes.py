"""How a v1 route declares what it requires and how it is documented: the v2 requirement (scope plus a role of the
tenant file), with the tenant headers optional (v1 clients send none: tenant and realm come from the token) and the
Idempotency-Key every write takes."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Operation, Parameter, Reference, Schema

from app.auth.principal import Permission
from app.auth.requirements import REQUIREMENT, TENANT_HEADERS, Requirement
from app.idempotency.http import IDEMPOTENCY_KEY_PARAMETER

V1_PATH = "/api/v1"
V1_TAG = "v1"


def _optional(header: Parameter) -> Parameter:
    optional = copy.deepcopy(header)
    optional.required = False
    optional.description = f"{header.description} (default: the token's)"
    if optional.schema is not None and not isinstance(optional.schema, dict):
        optional.schema.description = optional.description
    return optional


_V1_TENANT_HEADERS = tuple(
    _optional(header) if header.name in ("x-tenantid", "realmname") else header for header in TENANT_HEADERS
)


@dataclass
class V1Operation(Operation):
    """A v1 operation: the optional tenant headers first, then the route's own parameters."""

    def __post_init__(self) -> None:
        self.parameters = [*_V1_TENANT_HEADERS, *(_documented(p) for p in self.parameters or ())]


def _documented(parameter: Parameter | Reference) -> Parameter | Reference:
    """Idempotency-Key as every write documents it; a ticket's id as the UUID it is (taken as text, so that any
    other text is the seeds' 404 rather than a routing miss); a ticket state's id as the number it names."""
    if not isinstance(parameter, Parameter):
        return parameter
    if parameter.name == IDEMPOTENCY_KEY_PARAMETER.name:
        return IDEMPOTENCY_KEY_PARAMETER
    if parameter.name == "ticket_id":
        parameter.schema = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID)
    schema = parameter.schema
    if isinstance(schema, Schema) and schema.one_of:
        # An optional parameter is left out, never sent as null: document the value alone, with the constraints
        # and enum the outer schema carries.
        values = [s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)]
        if len(values) == 1 and isinstance(values[0], Schema):
            schema.one_of = None
            schema.type = values[0].type
            schema.format = schema.format or values[0].format
            schema.enum = schema.enum or values[0].enum
    if parameter.name == "ticket_state_id":
        # Text, as the path carries it: a number that names no state, or text that is no number, is the same 404.
        parameter.schema = Schema(type=OpenAPIType.STRING, description="The state's integer id (seed 003)")
    return parameter


# Route option: seed 003's permission names, one of which the caller needs (app/v1/permissions.py checks them).
SEED_PERMISSIONS = "seed_permissions"


def v1_requires(
    permission: Permission | None,
    scope: str | None,
    action: str,
    *,
    seed_permissions: tuple[str, ...] = (),
    customers: bool = False,
) -> dict[str, Any]:
    """Route decorator arguments: the v2 requirement (a missing one answers 403 in the route's v1 envelope; with
    `customers`, a customer-level role also suffices, as in v2), and the seed permissions the route names."""
    requirement = Requirement(permission, scope, f"You do not have the permission to {action}", customers)
    return {
        "opt": {REQUIREMENT: requirement, SEED_PERMISSIONS: seed_permissions},
        "operation_class": V1Operation,
        "tags": [V1_TAG],
    }
