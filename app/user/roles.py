"""A directory role (admin, agent, customer) in terms of a tenant's realm roles and scopes, both ways."""

from __future__ import annotations

from app.auth.requirements import ADMIN_SCOPE, READ_SCOPE, WRITE_SCOPE
from app.tenancy.model import RoleMapping
from app.tenancy.registry import Tenant
from app.user.dto import Role


class RoleNotMapped(ValueError):
    """The tenant's file maps no realm role to this directory role (a tenant without customer roles)."""


def agent_roles(roles: RoleMapping) -> list[str]:
    """An agent: the first role that may write without administering, plus a read role if it cannot read."""
    writers = [r for r in roles.write if r not in roles.admin] or list(roles.write)
    agent = writers[0]
    return [agent] if agent in roles.read else [agent, roles.read[0]]


def realm_roles(roles: RoleMapping, role: Role) -> list[str]:
    """The realm roles a built-in user's tokens carry for its directory role."""
    if role == "agent":
        return agent_roles(roles)
    if role == "customer":
        if not roles.customer:
            raise RoleNotMapped("the tenant has no customer role")
        return [roles.customer[0]]
    granted = {roles.admin[0]}
    if roles.admin[0] not in roles.write:
        granted.update(agent_roles(roles))
    if not granted & set(roles.read):
        granted.add(roles.read[0])
    return sorted(granted)


def scopes(role: Role) -> list[str]:
    return [READ_SCOPE, WRITE_SCOPE, ADMIN_SCOPE] if role == "admin" else [READ_SCOPE, WRITE_SCOPE]


def directory_role(tenant: Tenant, roles: frozenset[str]) -> Role:
    """What the directory calls a user of an external realm with these realm roles: the most it may do. A user with
    no role the tenant maps is listed as a customer, the least."""
    if roles & tenant.admin_roles:
        return "admin"
    if roles & (tenant.read_roles | tenant.write_roles):
        return "agent"
    return "customer"
