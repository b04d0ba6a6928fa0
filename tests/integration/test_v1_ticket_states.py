"""Seed 003 at its own path: /api/v1/ticket_states with integer ids, replayed from the seed text (the list of a
fresh tenant is the seed's list, member by member; the create and update bodies are the seed's), the seed's
permissions mapped onto the tenant's roles, and delete refused while the state is referenced."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support import (
    ADMIN_SCOPE,
    V1,
    TenantApi,
    TenantSpec,
    field_ids,
    seed_examples,
    token,
    v1_headers,
)

SEED = "003_db2b035f9a118cf0.txt"
STATES = f"{V1}/ticket_states"
SEED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
UNTIMED = ("created_at", "updated_at", "created_by_id", "updated_by_id")


def examples() -> dict[str, Any]:
    found = seed_examples(SEED)
    headings = [example.heading for example in found]
    assert headings == [
        "# HTTP-Code 200 Ok",
        "# HTTP-Code 200 Ok",
        "-Request sent: /api/v1/ticket_states",
        "# HTTP-Code 201 Created",
        "-Request sent: /api/v1/ticket_states/{id}",
        "# HTTP-Code 200 Ok",
        "# HTTP-Code 200 Ok",
    ]
    names = ["list", "show", "create request", "created", "update request", "updated", "deleted"]
    return dict(zip(names, [example.value for example in found], strict=True))


def untimed(state: dict[str, Any]) -> dict[str, Any]:
    assert SEED_TIME.fullmatch(state["created_at"]) and SEED_TIME.fullmatch(state["updated_at"]), state
    assert isinstance(state["created_by_id"], int) and isinstance(state["updated_by_id"], int)
    return {key: value for key, value in state.items() if key not in UNTIMED}


def admin_headers(tenant: TenantSpec, subject: str = "admin-1") -> dict[str, str]:
    return v1_headers(token(tenant, roles=["admin"], scope=ADMIN_SCOPE, subject=subject))


async def test_a_fresh_tenants_states_are_the_seeds_list(client: httpx.AsyncClient, tenant_factory: Any) -> None:
    tenant = await tenant_factory.fresh("plain", ticket_types=["request"])
    seed = examples()
    response = await client.get(STATES, headers=v1_headers(TenantApi.agent(client, tenant).bearer))
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [list(state) for state in listed] == [list(state) for state in seed["list"]]
    assert [untimed(state) for state in listed] == [untimed(state) for state in seed["list"]]
    # Seeded by the system: one actor, the tenant's first.
    assert {(state["created_by_id"], state["updated_by_id"]) for state in listed} == {(1, 1)}
    shown = await client.get(f"{STATES}/4", headers=v1_headers(TenantApi.agent(client, tenant).bearer))
    assert (shown.status_code, untimed(shown.json())) == (200, untimed(seed["show"]))


async def test_create_update_and_delete_are_the_seeds(client: httpx.AsyncClient, tenant_factory: Any) -> None:
    tenant = await tenant_factory.fresh("plain", ticket_types=["request"])
    seed = examples()
    headers = admin_headers(tenant)
    created = await client.post(STATES, headers=headers, json=seed["create request"])
    assert created.status_code == 201, created.text
    assert list(created.json()) == list(seed["created"])
    assert untimed(created.json()) == untimed(seed["created"])
    assert created.json()["created_by_id"] == created.json()["updated_by_id"] == 2  # after the system
    updated = await client.put(f"{STATES}/8", headers=headers, json=seed["update request"])
    assert updated.status_code == 200, updated.text
    assert untimed(updated.json()) == untimed(seed["updated"])
    assert updated.json()["updated_at"] >= updated.json()["created_at"]
    deleted = await client.delete(f"{STATES}/8", headers=headers)
    assert (deleted.status_code, deleted.json()) == (200, seed["deleted"])
    gone = await client.get(f"{STATES}/8", headers=headers)
    assert (gone.status_code, gone.json()) == (404, {"error": "Couldn't find Ticket::State with 'id'=8"})
    # A number is never given out again.
    again = await client.post(STATES, headers=headers, json=seed["create request"])
    assert (again.status_code, again.json()["id"]) == (201, 9)


async def test_a_referenced_state_is_not_deleted(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    headers = admin_headers(alpha)
    listed = (await client.get(STATES, headers=headers)).json()
    by_name = {state["name"]: state for state in listed}
    # "closed" is named by "pending close" as its next state; "new" holds tickets once one is created.
    req = await agent.ticket_type("REQ")
    assert (await agent.create(req["id"], {field_ids(req)["title"]: "Holds new"})).status_code == 201
    for name in ("closed", "PENDING"):
        refused = await client.delete(f"{STATES}/{by_name[name]['id']}", headers=headers)
        assert (refused.status_code, refused.json()) == (422, {"error": "Can't delete, object has references."})
    assert (await client.get(STATES, headers=headers)).json() == listed


async def test_bad_input_and_unknown_ids(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    headers = admin_headers(alpha)
    before = (await client.get(STATES, headers=headers)).json()
    for body in (
        {"name": "x"},
        {"name": "x", "state_type_id": 8},
        {"name": "x", "state_type_id": "2"},
        {"name": "new", "state_type_id": 2},
        {"name": "x", "state_type_id": 4},
        {"name": "x", "state_type_id": 2, "next_state_id": 999},
        {"name": "x", "state_type_id": 2, "colour": "red"},
    ):
        response = await client.post(STATES, headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert list(response.json()) == ["error"] and response.json()["error"], body
    malformed = await client.post(STATES, headers={**headers, "content-type": "application/json"}, content=b"{nope")
    assert (malformed.status_code, malformed.json()) == (400, {"error": "body: not valid JSON"})
    for path in ("999", "abc", "-1", "1.5"):
        missing = await client.get(f"{STATES}/{path}", headers=headers)
        assert (missing.status_code, missing.json()) == (
            404,
            {"error": f"Couldn't find Ticket::State with 'id'={path}"},
        )
        assert (await client.put(f"{STATES}/{path}", headers=headers, json={"note": "x"})).status_code == 404
    assert (await client.get(STATES, headers=headers)).json() == before


async def test_the_seeds_permissions_are_the_tenants_roles(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    read, write = {"state_type_id": 2, "name": "permissions"}, {"note": "changed"}
    anonymous = await client.get(STATES, headers=v1_headers(None))
    assert (anonymous.status_code, anonymous.json()) == (401, {"error": "authentication failed"})
    for roles in (["viewer"], ["agent"], ["customer"], ["admin"]):
        listed = await client.get(STATES, headers=v1_headers(token(alpha, roles=roles)))
        assert listed.status_code == 200, roles
    for roles, scope in ((["support"], ADMIN_SCOPE), ([], ADMIN_SCOPE), (["agent"], "tickets:write")):
        refused = await client.get(STATES, headers=v1_headers(token(alpha, roles=roles, scope=scope)))
        assert (refused.status_code, refused.json()) == (403, {"error": "Not authorized"}), roles
    for roles in (["agent"], ["viewer"], ["customer"]):
        bearer = token(alpha, roles=roles, scope=ADMIN_SCOPE)
        assert (await client.post(STATES, headers=v1_headers(bearer), json=read)).status_code == 403
        assert (await client.put(f"{STATES}/1", headers=v1_headers(bearer), json=write)).status_code == 403
        assert (await client.delete(f"{STATES}/1", headers=v1_headers(bearer))).status_code == 403
    # Another tenant's token lists its own tenant's states; naming this tenant is "Tenant not found".
    outsider = token(beta, roles=["boss"], scope=ADMIN_SCOPE)
    assert (await client.get(STATES, headers=v1_headers(outsider))).status_code == 200
    named = await client.get(STATES, headers=v1_headers(outsider, **{"x-tenantid": str(alpha.id)}))
    assert (named.status_code, named.json()) == (404, {"error": "Tenant not found"})
