"""Who is calling: the verified identity every handler receives."""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

Permission = Literal["read", "write", "admin"]


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
