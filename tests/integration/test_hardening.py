"""Regressions for hostile inputs and failure modes found in review: each was a hang, a 500 or a takeover."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from app.tenancy.service import TenantConflict
from tests.support import (
    ME,
    TENANT_NOT_FOUND,
    TICKETS,
    TYPES,
    RealmSpec,
    SigningKey,
    TenantApi,
    TenantFactory,
    TenantSpec,
    create_type,
    field_ids,
    new_definition,
    new_field,
    new_ticket,
    sync_tenants,
)


@pytest.fixture
async def request_type(client: httpx.AsyncClient, alpha: TenantSpec) -> dict[str, Any]:
    return await TenantApi.agent(client, alpha).ticket_type("REQ")


async def test_a_schema_whose_refs_expand_exponentially_is_refused(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    depth = 30  # 2**30 subschemas once expanded, from about 2 KB of schema
    definitions: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(depth)}
    definitions[f"d{depth}"] = {"type": "string", "minLength": 5}
    field = new_field("bomb", {"$defs": definitions, "$ref": "#/$defs/d0"})
    started = time.monotonic()
    response = await client.post(TYPES, json=new_definition(field), headers=admin.headers)
    assert time.monotonic() - started < 2
    assert response.status_code == 400, response.text
    assert response.json()["validationResult"]["reason"] == {
        "fields[0].schema": "expands to more than 10000 subschemas through its $refs"
    }


async def test_a_modest_shared_definition_is_still_accepted(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    schema = {
        "$defs": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
        "type": "object",
        "properties": {"from": {"$ref": "#/$defs/code"}, "to": {"$ref": "#/$defs/code"}},
    }
    created = await create_type(client, admin, new_definition(new_field("route", schema)))
    assert created["fields"][0]["schema"] == schema


async def test_nul_characters_are_input_errors_not_500s(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any]
) -> None:
    agent = TenantApi.agent(client, alpha)
    f = field_ids(request_type)
    created = await agent.create(request_type["id"], {f["title"]: "a\u0000b"})
    assert created.status_code == 400
    assert created.json()["validationResult"]["reason"] == {
        f["title"]: "text may not contain the NUL character (\\u0000)"
    }
    ticket = await new_ticket(agent, request_type["id"], {f["title"]: "fine"})
    updated = await agent.update(ticket["objectId"], {"etag": ticket["etag"], "ticketUpdate": {f["tags"]: ["a\u0000"]}})
    assert updated.json()["validationResult"]["reason"] == {
        f["tags"]: "text may not contain the NUL character (\\u0000)"
    }
    listed = await client.get(TICKETS, params={f"data.{f['title']}": '"a\\u0000"'}, headers=agent.headers)
    assert (listed.status_code, listed.json()["code"]) == (400, "INPUT_VALIDATION_FAILURE")
    admin = TenantApi.admin(client, alpha)
    named = await client.post(TYPES, json=new_definition(new_field("x", {}), name="a\u0000"), headers=admin.headers)
    assert (named.status_code, named.json()["message"]) == (400, "Text may not contain the NUL character (\\u0000)")


@pytest.mark.parametrize("spelling", ["{%s}", "urn:uuid:%s", "hex"])
async def test_only_the_plain_uuid_form_names_a_tenant(
    client: httpx.AsyncClient, alpha: TenantSpec, spelling: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    value = alpha.id.hex if spelling == "hex" else spelling % alpha.id
    headers = {**agent.headers, "x-tenantid": value}
    response = await client.get(ME, headers=headers)
    assert (response.status_code, response.json()) == (404, TENANT_NOT_FOUND)


async def test_idempotency_keys_belong_to_their_caller(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any]
) -> None:
    title = field_ids(request_type)["title"]
    key = "shared-key"
    first = await TenantApi.agent(client, alpha, subject="agent-a").create(
        request_type["id"], {title: "same"}, **{"Idempotency-Key": key}
    )
    second = await TenantApi.agent(client, alpha, subject="sa-tenant-other").create(
        request_type["id"], {title: "same"}, **{"Idempotency-Key": key}
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["objectId"] != second.json()["objectId"]
    assert "idempotent-replayed" not in second.headers


async def test_a_ticket_type_404_does_not_reflect_long_input(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    response = await client.get(f"{TYPES}/{'x' * 5000}", headers=agent.headers)
    assert (response.status_code, response.json()) == (
        404,
        {"error": True, "message": f"Ticket type not found ({'x' * 64})"},
    )


async def test_a_second_tenant_cannot_claim_another_tenants_issuer(
    tenant_factory: TenantFactory, alpha: TenantSpec, database_url: str
) -> None:
    impostor = tenant_factory.spec("impostor")
    impostor.realms = [RealmSpec("stolen", alpha.realms[0].issuer, SigningKey("ES256"))]
    with pytest.raises(TenantConflict, match="already belongs to a realm of tenant"):
        await sync_tenants(database_url, tenant_factory.configs(impostor))
