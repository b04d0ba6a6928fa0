"""GET /api/v2/ticketing/me: what the caller's token grants, so integrators can debug their set-up."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, get

from app.auth.principal import Permission, Principal
from app.auth.requirements import AUTHENTICATED
from app.errors import error_responses


class MeResponse(msgspec.Struct, frozen=True):
    subject: str
    tenant_id: uuid.UUID
    realm: str
    username: str | None
    service_account: bool
    support_request: bool
    roles: list[str]
    scopes: list[str]
    permissions: list[Permission]
    # Customer-level only: the caller sees the tickets it created and no internal notes.
    customer_only: bool


class MeController(Controller):
    path = "/me"
    tags = ("identity",)

    @get(
        **AUTHENTICATED,
        operation_id="showMe",
        summary="The caller's principal",
        responses=error_responses(400, 401, 404),
    )
    async def me(self, request: Request[Principal, Any, Any]) -> MeResponse:
        """Subject, tenant, realm, roles, scopes and the permissions they grant in this tenant."""
        principal = request.user
        return MeResponse(
            subject=principal.subject,
            tenant_id=principal.tenant_id,
            realm=principal.realm,
            username=principal.username,
            service_account=principal.service_account,
            support_request=principal.support_request,
            roles=sorted(principal.roles),
            scopes=sorted(principal.scopes),
            permissions=sorted(principal.permissions),
            customer_only=principal.customer_only,
        )
