"""Who is calling: the verified identity every handler receives."""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

# read, write, admin: agent-level permissions. customer: the caller's own tickets only (see Principal.customer_only).
# comment and delete: what the tenant file's comment and delete roles grant.
Permission = Literal["read", "write", "admin", "customer", "comment", "delete"]
AGENT_PERMISSIONS: frozenset[Permission] = frozenset(("read", "write", "admin"))


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    # A service account is recorded under its own subject (seed 002, note 6), never under a human's.
    subject: str
    tenant_id: uuid.UUID
    realm: str
    roles: frozenset[str]
    scopes: frozenset[str]
    permissions: frozenset[Permission]
    service_account: bool
    # True only when the caller asked (issupportrequest: true) and carries the tenant's support role.
    support_request: bool
    username: str | None = None
    # The token's standard claims `name` and `email`, when it has them: what the users directory shows.
    name: str | None = None
    email: str | None = None
    # A caller with no agent-level role (customer, comment or delete roles only): sees only the tickets it created,
    # and no internal notes.
    customer_only: bool = False
    # A service account's client id (Keycloak's client_id claim): the client its rate limit counts for.
    client_id: str | None = None
    # The token's `iat` (seconds since the epoch), when it has one: a built-in user's or service account's token
    # issued before its credentials last changed is refused.
    issued_at: float | None = None

    @property
    def sees_internal_notes(self) -> bool:
        """Internal notes, and the files that came with them, are for agent-level callers only."""
        return not self.customer_only
