"""A route's requirement: its scope, then its permission or, where the route takes them, a customer-level role."""

from __future__ import annotations

import uuid

import pytest

from app.auth.principal import Permission, Principal
from app.auth.requirements import READ_SCOPE, Requirement
from app.errors import PermissionDenied


def caller(*permissions: Permission, scopes: tuple[str, ...] = (READ_SCOPE,)) -> Principal:
    return Principal(
        subject="someone",
        tenant_id=uuid.uuid4(),
        realm="main",
        roles=frozenset(),
        scopes=frozenset(scopes),
        permissions=frozenset(permissions),
        service_account=False,
        support_request=False,
        customer_only="customer" in permissions and not {"read", "write", "admin"} & set(permissions),
    )


AGENTS_ONLY = Requirement("read", READ_SCOPE, "You do not have the permission to read tickets")
CUSTOMERS_TOO = Requirement("read", READ_SCOPE, "You do not have the permission to read tickets", customers=True)


@pytest.mark.parametrize(
    ("requirement", "principal", "allowed"),
    [
        pytest.param(AGENTS_ONLY, caller("read"), True, id="agent"),
        pytest.param(AGENTS_ONLY, caller("customer", "comment"), False, id="customer-on-an-agents-route"),
        pytest.param(CUSTOMERS_TOO, caller("customer"), True, id="customer-where-customers-may"),
        pytest.param(CUSTOMERS_TOO, caller("read"), True, id="agent-where-customers-may"),
        pytest.param(CUSTOMERS_TOO, caller("comment"), False, id="neither"),
        pytest.param(CUSTOMERS_TOO, caller("customer", scopes=()), False, id="customer-without-the-scope"),
    ],
)
def test_requirement(requirement: Requirement, principal: Principal, allowed: bool) -> None:
    if allowed:
        requirement.check(principal)
    else:
        with pytest.raises(PermissionDenied, match="You do not have the permission to read tickets"):
            requirement.check(principal)
