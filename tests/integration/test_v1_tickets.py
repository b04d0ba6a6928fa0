"""Seeds 000 and 001 at their own paths: PATCH /api/v1/tickets/{id}/status and PUT /api/v1/tickets/{id}, replayed
from the seed text (request bodies parsed out of the seed files, responses compared member by member with the
seeds' own, every error example included), seed 000's workflow, seed 001's read-only members, authentication with
the token alone, and the interplay with v2: the same tickets, the same history, the same etags."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.support import (
    V1,
    TenantApi,
    TenantSpec,
    field_ids,
    seed_example,
    token,
    v1_headers,
)

STATUS_SEED = "000_1206ac087fbe9fac.txt"
UPDATE_SEED = "001_b4e1603f8a614311.txt"
SEED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# What a v1 client would not know of a ticket before it reads it: who and when.
ASSIGNEE = "550e8400-e29b-41d4-a716-446655440002"


def status_path(ticket_id: str) -> str:
    return f"{V1}/tickets/{ticket_id}/status"


def ticket_path(ticket_id: str) -> str:
    return f"{V1}/tickets/{ticket_id}"


async def seeded_ticket(api: TenantApi, example: dict[str, Any]) -> dict[str, Any]:
    """A FAC ticket created through v2 with the values of a seed's ticket, assigned as the seed's is; its v2 GET."""
    fac = await api.ticket_type("FAC")
    fields = field_ids(fac)
    members = ("category", "title", "description", "attachments", "notes")
    created = await api.create(fac["id"], {fields[name]: example[name] for name in members})
    assert created.status_code == 201, created.text
    object_id = created.json()["objectId"]
    assigned = await api.assign(object_id, {"etag": created.json()["etag"], "assignee": ASSIGNEE})
    assert assigned.status_code == 200, assigned.text
    return (await api.get(object_id)).json()


def assert_seed_shape(answer: dict[str, Any], seed: dict[str, Any], ticket: dict[str, Any], **expected: Any) -> None:
    """The answer has the seed's members in the seed's order, each of the seed's JSON type; who and when are the
    ticket's own, every other member is the seed's value unless `expected` says otherwise."""
    assert list(answer) == list(seed)
    for name, value in seed.items():
        assert type(answer[name]) is type(value), name
    assert answer["id"] == ticket["id"]
    assert answer["userId"] == ticket["created_by"]
    assert SEED_TIME.fullmatch(answer["createdAt"]) and SEED_TIME.fullmatch(answer["updatedAt"])
    assert answer["updatedAt"] >= answer["createdAt"]
    unknown = {"id", "userId", "createdAt", "updatedAt"}
    assert {k: v for k, v in answer.items() if k not in unknown} == {
        k: expected.get(k, v) for k, v in seed.items() if k not in unknown
    }


# --- seed 000 -------------------------------------------------------------------------------------------------------


async def test_seed_000_status_change_is_the_seeds_request_and_answer(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    seed = seed_example(STATUS_SEED, "Success Response (200)")
    ticket = await seeded_ticket(agent, seed)
    body = seed_example(STATUS_SEED, "Request Body")
    response = await client.patch(status_path(ticket["id"]), headers=v1_headers(agent.bearer), json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_seed_shape(response.json(), seed, ticket)
    after = (await agent.get(ticket["object_id"])).json()
    assert (after["state_name"], after["etag"] != ticket["etag"]) == ("IN_PROGRESS", True)


async def test_seed_000_error_examples(client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    path = status_path(ticket["id"])
    headers = v1_headers(agent.bearer)
    bad = await client.patch(path, headers=headers, json={"status": "DONE"})
    assert (bad.status_code, bad.json()) == (400, seed_example(STATUS_SEED, "Error Response (400)"))
    missing = await client.patch(status_path(str(uuid.uuid4())), headers=headers, json={"status": "IN_PROGRESS"})
    assert (missing.status_code, missing.json()) == (404, seed_example(STATUS_SEED, "Error Response (404)"))
    anonymous = await client.patch(path, headers=v1_headers(None), json={"status": "IN_PROGRESS"})
    assert (anonymous.status_code, anonymous.json()) == (401, seed_example(STATUS_SEED, "Error Response (401)"))
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    viewer = token(alpha, roles=["viewer"], scope="tickets:read tickets:write")
    refused = await client.patch(path, headers=v1_headers(viewer), json={"status": "IN_PROGRESS"})
    assert (refused.status_code, refused.json()) == (403, seed_example(STATUS_SEED, "Error Response (403)"))
    # Nothing of that changed the ticket.
    assert (await agent.get(ticket["object_id"])).json()["etag"] == ticket["etag"]


async def test_seed_000_workflow_allows_its_moves_and_refuses_the_others(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    headers = v1_headers(agent.bearer)
    seed = seed_example(STATUS_SEED, "Success Response (200)")

    async def move(ticket: dict[str, Any], status: str) -> httpx.Response:
        return await client.patch(status_path(ticket["id"]), headers=headers, json={"status": status})

    def refused(source: str, target: str, allowed: str) -> dict[str, Any]:
        detail = f"Cannot change status from {source} to {target}. {allowed}"
        return {
            "success": False,
            "error": {"message": "Validation failed", "code": "VALIDATION_ERROR", "details": {"status": detail}},
        }

    first = await seeded_ticket(agent, {**seed, "notes": ""})
    skipped = await move(first, "COMPLETED")
    assert (skipped.status_code, skipped.json()) == (
        400,
        refused("PENDING", "COMPLETED", "Allowed: IN_PROGRESS, CANCELLED"),
    )
    same = await move(first, "PENDING")
    assert (same.status_code, same.json()) == (400, refused("PENDING", "PENDING", "Allowed: IN_PROGRESS, CANCELLED"))
    assert (await move(first, "IN_PROGRESS")).json()["status"] == "IN_PROGRESS"
    # The facility type's guard: completed work carries notes.
    unnoted = await move(first, "COMPLETED")
    assert unnoted.status_code == 400
    assert unnoted.json()["error"]["details"] == {"notes": "required before a ticket may enter 'COMPLETED'"}
    noted = await client.put(ticket_path(first["id"]), headers=headers, json={"notes": "Replaced the fuse"})
    assert noted.status_code == 200, noted.text
    completed = await move(first, "COMPLETED")
    assert (completed.status_code, completed.json()["status"], completed.json()["notes"]) == (
        200,
        "COMPLETED",
        "Replaced the fuse",
    )
    final = await move(first, "CANCELLED")
    assert (final.status_code, final.json()) == (400, refused("COMPLETED", "CANCELLED", "No status may follow it"))

    second = await seeded_ticket(agent, seed)
    assert (await move(second, "CANCELLED")).json()["status"] == "CANCELLED"
    third = await seeded_ticket(agent, seed)
    assert (await move(third, "IN_PROGRESS")).status_code == 200
    assert (await move(third, "CANCELLED")).json()["status"] == "CANCELLED"
    back = await move(third, "IN_PROGRESS")
    assert back.status_code == 400


async def test_a_status_body_that_is_not_the_seeds_is_a_validation_error(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    path, headers = status_path(ticket["id"]), v1_headers(agent.bearer)
    expected = seed_example(STATUS_SEED, "Error Response (400)")
    for body in ({}, {"status": None}, {"status": 3}, {"status": "in_progress"}, {"status": ""}):
        response = await client.patch(path, headers=headers, json=body)
        assert (response.status_code, response.json()) == (400, expected), body
    extra = await client.patch(path, headers=headers, json={"status": "IN_PROGRESS", "note": "x"})
    assert (extra.status_code, extra.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
    for content in (b"not json", b"[1]", b'"IN_PROGRESS"'):
        raw = await client.patch(path, headers={**headers, "content-type": "application/json"}, content=content)
        assert (raw.status_code, raw.json()["success"], raw.json()["error"]["code"]) == (400, False, "VALIDATION_ERROR")
    assert (await agent.get(ticket["object_id"])).json()["etag"] == ticket["etag"]


# --- seed 001 -------------------------------------------------------------------------------------------------------


async def test_seed_001_update_is_the_seeds_request_and_answer(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seed = seed_example(UPDATE_SEED, "Success Response (200)")
    # The ticket as it was before the seed's update: the seed 000 ticket, still PENDING.
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    body = seed_example(UPDATE_SEED, "Request Body")
    response = await client.put(ticket_path(ticket["id"]), headers=v1_headers(agent.bearer), json=body)
    assert response.status_code == 200, response.text
    assert_seed_shape(response.json(), seed, ticket)
    after = (await agent.get(ticket["object_id"])).json()
    fields = field_ids(await agent.ticket_type("FAC"))
    assert {name: after["data"][fields[name]] for name in body} == body
    assert after["etag"] != ticket["etag"]


async def test_seed_001_error_examples(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    path, headers = ticket_path(ticket["id"]), v1_headers(agent.bearer)
    body = seed_example(UPDATE_SEED, "Request Body")
    bad = await client.put(path, headers=headers, json={**body, "category": "PLUMBING"})
    assert (bad.status_code, bad.json()) == (400, seed_example(UPDATE_SEED, "Error Response (400)"))
    missing = await client.put(ticket_path(str(uuid.uuid4())), headers=headers, json=body)
    assert (missing.status_code, missing.json()) == (404, seed_example(UPDATE_SEED, "Error Response (404)"))
    anonymous = await client.put(path, headers=v1_headers(None), json=body)
    assert (anonymous.status_code, anonymous.json()) == (401, seed_example(UPDATE_SEED, "Error Response (401)"))
    bad_token = await client.put(path, headers=v1_headers(agent.bearer[:-4] + "AAAA"), json=body)
    assert (bad_token.status_code, bad_token.json()) == (401, seed_example(UPDATE_SEED, "Error Response (401)"))
    customer = TenantApi.customer(client, alpha)
    refused = await client.put(path, headers=v1_headers(customer.bearer), json=body)
    assert (refused.status_code, refused.json()) == (403, seed_example(UPDATE_SEED, "Error Response (403)"))
    no_scope = token(alpha, roles=["agent"], scope="tickets:read")
    refused = await client.put(path, headers=v1_headers(no_scope), json=body)
    assert (refused.status_code, refused.json()) == (403, seed_example(UPDATE_SEED, "Error Response (403)"))
    assert (await agent.get(ticket["object_id"])).json()["etag"] == ticket["etag"]


async def test_seed_001_read_only_members_and_bad_values_are_refused_by_name(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    path, headers = ticket_path(ticket["id"]), v1_headers(agent.bearer)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"status": "COMPLETED"}, {"status"}),
        ({"assignedTo": "someone"}, {"assignedTo"}),
        ({"userId": "someone", "title": "Fine"}, {"userId"}),
        ({"id": str(uuid.uuid4())}, {"id"}),
        ({"title": "x" * 121}, {"title"}),
        ({"title": None}, {"title"}),
        ({"title": ""}, {"title"}),
        ({"category": None}, {"category"}),
        ({"category": 5}, {"category"}),
        ({"attachments": ["not a url"]}, {"attachments"}),
        ({"attachments": "https://example.com/a.jpg"}, {"attachments"}),
        ({"notes": ["notes are", "one string"]}, {"notes"}),
        ({"description": 12, "notes": 13}, {"description", "notes"}),
        ({}, {"body"}),
    ]
    for body, named in cases:
        response = await client.put(path, headers=headers, json=body)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert (error["code"], error["message"], set(error["details"])) == (
            "VALIDATION_ERROR",
            "Validation failed",
            named,
        )
    assert (await client.put(path, headers=headers, json={"status": "COMPLETED"})).json()["error"]["details"] == {
        "status": "cannot be changed through this endpoint; use PATCH /api/v1/tickets/{id}/status"
    }
    unknown = await client.put(path, headers=headers, json={"priority": "high"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
    assert (await agent.get(ticket["object_id"])).json()["etag"] == ticket["etag"]
    # Exactly 120 characters is a title; null clears a field that is not required; omitted members stay.
    title = "t" * 120
    cleared = await client.put(path, headers=headers, json={"title": title, "description": None})
    assert cleared.status_code == 200, cleared.text
    answer = cleared.json()
    assert (answer["title"], answer["description"], answer["category"]) == (title, None, "MAINTENANCE")
    assert answer["attachments"] == ["https://example.com/image1.jpg"]


# --- authentication and tenants --------------------------------------------------------------------------------------


async def test_the_token_names_the_tenant_and_headers_sent_must_agree(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    path = ticket_path(ticket["id"])
    body = {"notes": "Checked"}
    realm = alpha.realms[0].name
    with_headers = v1_headers(agent.bearer, **{"x-tenantid": str(alpha.id), "realmname": realm})
    assert (await client.put(path, headers=with_headers, json=body)).status_code == 200
    other_tenant = v1_headers(agent.bearer, **{"x-tenantid": str(beta.id)})
    refused = await client.put(path, headers=other_tenant, json=body)
    assert (refused.status_code, refused.json()["error"]) == (404, {"message": "Tenant not found", "code": "NOT_FOUND"})
    wrong_realm = await client.put(path, headers=v1_headers(agent.bearer, realmname=beta.realms[0].name), json=body)
    assert (wrong_realm.status_code, wrong_realm.json()["error"]["code"]) == (401, "UNAUTHORIZED")
    # Another tenant's agent: its token names its own tenant, where there is no such ticket.
    outsider = token(beta, roles=["agent"])
    foreign = await client.put(path, headers=v1_headers(outsider), json=body)
    assert (foreign.status_code, foreign.json()) == (404, seed_example(UPDATE_SEED, "Error Response (404)"))
    foreign = await client.patch(status_path(ticket["id"]), headers=v1_headers(outsider), json={"status": "CANCELLED"})
    assert foreign.status_code == 404
    # A ticket of another type is not a v1 ticket.
    req = await agent.ticket_type("REQ")
    other = await agent.create(req["id"], {field_ids(req)["title"]: "Printer"})
    request_ticket = (await agent.get(other.json()["objectId"])).json()
    not_v1 = await client.put(ticket_path(request_ticket["id"]), headers=v1_headers(agent.bearer), json=body)
    assert (not_v1.status_code, not_v1.json()) == (404, seed_example(UPDATE_SEED, "Error Response (404)"))
    # A path id that is not a UUID names no ticket.
    not_uuid = await client.put(ticket_path("REQ-0001"), headers=v1_headers(agent.bearer), json=body)
    assert (not_uuid.status_code, not_uuid.json()) == (404, seed_example(UPDATE_SEED, "Error Response (404)"))


# --- one engine -----------------------------------------------------------------------------------------------------


async def test_a_v1_change_is_a_v2_change_under_the_callers_subject(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    v1_agent = token(alpha, roles=["agent"], subject="v1-client")
    headers = v1_headers(v1_agent)
    put = await client.put(ticket_path(ticket["id"]), headers=headers, json={"title": "Lift stuck at floor 3"})
    assert put.status_code == 200, put.text
    moved = await client.patch(status_path(ticket["id"]), headers=headers, json={"status": "IN_PROGRESS"})
    assert moved.status_code == 200, moved.text
    history = (await agent.history(ticket["object_id"])).json()["data"]
    fields = field_ids(await agent.ticket_type("FAC"))
    updated, changed = history[-2], history[-1]
    assert (updated["event"], updated["actor"]) == ("ticket.updated", "v1-client")
    assert updated["changes"] == {fields["title"]: {"old": "Elevator Malfunction", "new": "Lift stuck at floor 3"}}
    assert (changed["event"], changed["actor"], changed["state"]["new_name"]) == (
        "ticket.status_changed",
        "v1-client",
        "IN_PROGRESS",
    )
    now = (await agent.get(ticket["object_id"])).json()
    assert now["etag"] == changed["etag"] != ticket["etag"]
    # A v2 change shows in the next v1 answer.
    v2 = await agent.update(ticket["object_id"], {"etag": now["etag"], "ticketUpdate": {fields["notes"]: "From v2"}})
    assert v2.status_code == 200, v2.text
    again = await client.put(ticket_path(ticket["id"]), headers=headers, json={"description": "From v1"})
    assert (again.json()["notes"], again.json()["description"], again.json()["status"]) == (
        "From v2",
        "From v1",
        "IN_PROGRESS",
    )


async def test_idempotency_key_replays_a_v1_write(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await seeded_ticket(agent, seed_example(STATUS_SEED, "Success Response (200)"))
    headers = v1_headers(agent.bearer, **{"Idempotency-Key": "v1-put-1"})
    first = await client.put(ticket_path(ticket["id"]), headers=headers, json={"notes": "Once"})
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    etag = (await agent.get(ticket["object_id"])).json()["etag"]
    second = await client.put(ticket_path(ticket["id"]), headers=headers, json={"notes": "Once"})
    assert (second.status_code, second.headers["idempotent-replayed"], second.json()) == (200, "true", first.json())
    assert (await agent.get(ticket["object_id"])).json()["etag"] == etag
    reused = await client.put(ticket_path(ticket["id"]), headers=headers, json={"notes": "Twice"})
    assert (reused.status_code, reused.json()["success"], reused.json()["error"]["code"]) == (
        422,
        False,
        "IDEMPOTENCY_KEY_REUSED",
    )
    long_key = {**headers, "Idempotency-Key": "k" * 256}
    bad_key = await client.put(ticket_path(ticket["id"]), headers=long_key, json={"notes": "Thrice"})
    assert (bad_key.status_code, list(bad_key.json()["error"]["details"])) == (400, ["Idempotency-Key"])
