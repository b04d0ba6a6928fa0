"""A small client for the v2 API in tests: tokens per role, the contract's headers, and typed shortcuts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.support import TenantSpec, claims_for, sign

API = "/api/v2/ticketing"
CATALOG = {"type": "template", "module": "ticketing"}
AGENT_SCOPE = "tickets:read tickets:write"
ADMIN_SCOPE = "tickets:read tickets:write tickets:admin"


def token(
    tenant: TenantSpec,
    *,
    roles: list[str] | None = None,
    scope: str = AGENT_SCOPE,
    subject: str = "agent-1",
    **claims: Any,
) -> str:
    realm = tenant.realms[0]
    return sign(claims_for(tenant, realm, roles=roles, scope=scope, subject=subject, **claims), realm.key)


def auth_headers(tenant: TenantSpec, bearer: str | None, **extra: str) -> dict[str, str]:
    headers = {"x-tenantid": str(tenant.id), "realmname": tenant.realms[0].name, "accept": "application/json", **extra}
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return headers


@dataclass
class TenantApi:
    """Calls as one principal of one tenant."""

    http: httpx.AsyncClient
    tenant: TenantSpec
    bearer: str

    @classmethod
    def agent(cls, http: httpx.AsyncClient, tenant: TenantSpec, subject: str = "agent-1") -> TenantApi:
        return cls(http, tenant, token(tenant, roles=["agent"], subject=subject))

    @classmethod
    def admin(cls, http: httpx.AsyncClient, tenant: TenantSpec, subject: str = "admin-1") -> TenantApi:
        roles = tenant.roles["admin"]
        return cls(http, tenant, token(tenant, roles=list(roles), scope=ADMIN_SCOPE, subject=subject))

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.tenant, self.bearer)

    async def ticket_types(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{API}/ticket-type", headers=self.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    async def ticket_type(self, prefix: str) -> dict[str, Any]:
        return next(t for t in await self.ticket_types() if t["prefix"] == prefix)

    async def create(self, type_id: str, data: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.http.post(
            f"{API}/ticket",
            params=CATALOG,
            headers={**self.headers, **headers},
            json={"ticketTypeId": type_id, "data": data},
        )

    async def get(self, object_id: str) -> httpx.Response:
        return await self.http.get(f"{API}/ticket/{object_id}", headers=self.headers)

    async def update(self, object_id: str, body: Any, params: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.patch(
            f"{API}/ticket/{object_id}/update",
            params=CATALOG if params is None else params,
            headers=self.headers,
            json=body,
        )


def field_ids(ticket_type: dict[str, Any]) -> dict[str, str]:
    """Field key -> field UUID."""
    return {f["key"]: f["id"] for f in ticket_type["fields"]}
