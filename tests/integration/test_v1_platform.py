"""Seed 004 (the "Ticketing Platform API") at /api/v1: its examples replayed from the seed text (request bodies parsed
out of the seed file, answers compared member by member with the seed's own, its error example included), its
filters, search, sort and pagination on seeded data, the PATCH's all-or-nothing, and the interplay with v2: the same
tickets, history under the caller's subject, concurrent writes of different members both kept."""

from __future__ import annotations

import asyncio
import base64
import copy
import re
import uuid
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from app.tenancy.registry import Tenant
from app.user.signin import sole_sign_in_tenant
from tests.receiver import Receiver
from tests.support import (
    ADMIN_SCOPE,
    API,
    STATES,
    TICKETS,
    USERS,
    V1,
    TenantApi,
    TenantFactory,
    TenantSpec,
    by_name,
    field_ids,
    seed_examples,
    token,
    v1_headers,
)

SEED = "004_944c8d2e3ac1e0c4.txt"
SEED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# The seed's placeholder where a file's base64 goes: not base64, so a replay sends real content in its place.
PLACEHOLDER = "base64_encoded_content..."
ERROR_LOG = b"2025-05-04 14:20:00 export failed: 404\n"
PASSWORD = "your_password"
# The request type's fields with defaults, beyond the seed's: a new ticket's custom_fields show them too.
DEFAULTS = {"counter": 0, "source": "api"}
# Where each example is, in the seed's order (several share the heading "Response:").
(
    LOGIN_REQUEST,
    CREATE_REQUEST,
    CREATE_RESPONSE,
    PATCH_REQUEST,
    PATCH_RESPONSE,
    COMMENT_REQUEST,
    COMMENT_RESPONSE,
    USERS_RESPONSE,
    WEBHOOK_PAYLOAD,
    LOGIN_RESPONSE,
    ERROR_RESPONSE,
    PAGINATION,
    LIST_RESPONSE,
    GET_RESPONSE,
) = range(14)


def example(index: int) -> Any:
    return copy.deepcopy(seed_examples(SEED)[index].value)


def with_files(body: dict[str, Any], content: bytes = ERROR_LOG) -> dict[str, Any]:
    """The seed's body with real base64 where it has its placeholder."""
    for attachment in body.get("attachments", []):
        assert attachment["content"] == PLACEHOLDER
        attachment["content"] = base64.b64encode(content).decode()
    return body


def person(tenant: TenantSpec, who: dict[str, Any], roles: list[str]) -> str:
    """A token for one of the seed's people: its id as the subject, its name and email as the token's claims."""
    return token(tenant, roles=roles, subject=who["id"], name=who["name"], email=who["email"])


async def introduce(client: httpx.AsyncClient, bearer: str) -> None:
    """A first call with the token: the users directory learns the person's name and email from it."""
    response = await client.get(f"{V1}/tickets", headers=v1_headers(bearer))
    assert response.status_code == 200, response.text


def assert_seed_members(answer: dict[str, Any], seed: dict[str, Any], *, exact_keys: bool = True) -> None:
    """The answer has the seed's members (in the seed's order, and no others when `exact_keys`), each of the seed's
    value, except the ones no client could predict: the ids the service gives and the times; those have the seed's
    form."""
    if exact_keys:
        assert list(answer) == list(seed)
    else:
        assert [key for key in answer if key in seed] == list(seed)
    for key, value in seed.items():
        if key == "id":
            uuid.UUID(answer["id"])
        elif key.endswith("_at"):
            assert SEED_TIME.fullmatch(answer[key]), (key, answer[key])
        elif key != "url":
            assert answer[key] == value, key


async def v2_ticket(api: TenantApi, ticket_id: str) -> dict[str, Any]:
    """The v2 view of the ticket with this internal id."""
    listed = await api.http.get(TICKETS, params={"per_page": "100"}, headers=api.headers)
    assert listed.status_code == 200, listed.text
    (found,) = [ticket for ticket in listed.json()["data"] if ticket["id"] == ticket_id]
    return found


async def history(api: TenantApi, object_id: str) -> list[dict[str, Any]]:
    response = await api.history(object_id, per_page="100")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def create(client: httpx.AsyncClient, bearer: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{V1}/tickets", headers=v1_headers(bearer), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


# --- the seed's examples --------------------------------------------------------------------------------------------


async def test_create_ticket_is_the_seeds_request_and_answer(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    seed = example(CREATE_RESPONSE)["data"]
    seed["custom_fields"] |= DEFAULTS
    jane = person(alpha, seed["created_by"], ["customer"])
    await introduce(client, jane)
    response = await client.post(f"{V1}/tickets", headers=v1_headers(jane), json=with_files(example(CREATE_REQUEST)))
    assert response.status_code == 201, response.text
    # Seed 004's rate-limit headers, counted against the tenant's plan (the test tenants': a million a minute).
    assert response.headers["x-ratelimit-limit"] == "1000000"
    assert int(response.headers["x-ratelimit-remaining"]) < 1_000_000
    assert list(response.json()) == ["data"]
    answer = response.json()["data"]
    assert_seed_members(answer, seed)
    assert answer["created_at"] == answer["updated_at"]

    # The same ticket in v2: the request type's fields, priority stored as the type's value, the file, the history.
    admin = TenantApi.admin(client, alpha)
    ticket = await v2_ticket(admin, answer["id"])
    fields = field_ids(await admin.ticket_type("REQ"))
    assert ticket["state_name"] == "new"
    assert {key: ticket["data"].get(fields[key]) for key in ("title", "priority", "tags", "browser", "os")} == {
        "title": "Cannot export reports",
        "priority": "normal",
        "tags": ["reports", "export"],
        "browser": "Firefox 102.0",
        "os": "MacOS 13.4",
    }
    files = await client.get(f"{TICKETS}/{ticket['object_id']}/attachments", headers=admin.headers)
    assert [(f["filename"], f["size"], f["mime_type"]) for f in files.json()["data"]] == [
        ("error_log.txt", len(ERROR_LOG), "text/plain")
    ]
    (created,) = [event for event in await history(admin, ticket["object_id"]) if event["event"] == "ticket.created"]
    assert created["actor"] == "user456"


async def test_the_seeds_placeholder_for_a_file_is_refused_and_nothing_is_created(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    response = await client.post(f"{V1}/tickets", headers=v1_headers(agent.bearer), json=example(CREATE_REQUEST))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("invalid_input", "The request data is invalid")
    assert [detail["field"] for detail in error["details"]] == ["attachments[0].content"]
    listed = await client.get(f"{V1}/tickets", headers=v1_headers(agent.bearer))
    assert listed.json()["pagination"]["total"] == 0


async def test_the_seeds_error_example(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    body = {"title": "Cannot export reports", "priority": "urgent"}
    response = await client.post(f"{V1}/tickets", headers=v1_headers(agent.bearer), json=body)
    assert (response.status_code, response.json()) == (400, example(ERROR_RESPONSE))
    patched = await client.patch(
        f"{V1}/tickets/{(await create(client, agent.bearer, {'title': 'x'}))['id']}",
        headers=v1_headers(agent.bearer),
        json={"priority": "urgent"},
    )
    assert (patched.status_code, patched.json()) == (400, example(ERROR_RESPONSE))


async def test_update_ticket_is_the_seeds_request_and_answer(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    seed = example(PATCH_RESPONSE)["data"]
    jane = person(alpha, seed["created_by"], ["customer"])
    support = person(alpha, seed["assigned_to"], ["agent"])
    await introduce(client, support)
    body = {key: seed[key] for key in ("title", "description", "tags")} | {"priority": "medium"}
    ticket = await create(client, jane, body)
    response = await client.patch(
        f"{V1}/tickets/{ticket['id']}", headers=v1_headers(support), json=example(PATCH_REQUEST)
    )
    assert response.status_code == 200, response.text
    answer = response.json()["data"]
    assert_seed_members(answer, seed, exact_keys=False)
    assert answer["custom_fields"] == DEFAULTS
    assert answer["updated_at"] >= answer["created_at"]

    # In v2: each change its own event under the caller's subject, in the order the PATCH makes them.
    admin = TenantApi.admin(client, alpha)
    after = await v2_ticket(admin, ticket["id"])
    assert (after["state_name"], after["assignee"]) == ("open", "agent789")
    events = (await history(admin, after["object_id"]))[-3:]
    assert [(event["event"], event["actor"]) for event in events] == [
        ("ticket.updated", "agent789"),
        ("ticket.status_changed", "agent789"),
        ("ticket.assigned", "agent789"),
    ]
    # A status the ticket already shows leaves its state alone.
    again = await client.patch(
        f"{V1}/tickets/{ticket['id']}", headers=v1_headers(support), json={"status": "in_progress"}
    )
    assert again.status_code == 200, again.text
    assert (await v2_ticket(admin, ticket["id"]))["etag"] == after["etag"]


async def test_a_patch_changes_everything_it_names_or_nothing(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    admin = TenantApi.admin(client, alpha)
    ticket = await create(client, agent.bearer, {"title": "all or nothing", "priority": "low"})
    before = await v2_ticket(admin, ticket["id"])
    path = f"{V1}/tickets/{ticket['id']}"
    for field, body in {
        "assigned_to": {"priority": "high", "assigned_to": "x" * 300},
        "status": {"priority": "high", "status": "done"},
        "title": {"title": "not here"},
    }.items():
        response = await client.patch(path, headers=v1_headers(agent.bearer), json=body)
        assert response.status_code == 400, (field, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert [detail["field"] for detail in error["details"]] == [field]
    empty = await client.patch(path, headers=v1_headers(agent.bearer), json={})
    assert [detail["field"] for detail in empty.json()["error"]["details"]] == ["body"]
    # Without the state `resolved` stands for, the status change fails after the priority was written in the same
    # transaction: both are rolled back.
    pending_close = await by_name(admin, "pending close")
    removed = await client.delete(f"{STATES}/{pending_close['id']}", headers=admin.headers)
    assert removed.status_code == 204, removed.text
    refused = await client.patch(
        path, headers=v1_headers(agent.bearer), json={"priority": "high", "status": "resolved"}
    )
    assert (refused.status_code, refused.json()) == (
        422,
        {
            "error": {
                "code": "validation_error",
                "message": "The request data failed validation",
                "details": [{"field": "status", "message": "This tenant has no state for the status resolved"}],
            }
        },
    )
    assert (await v2_ticket(admin, ticket["id"]))["etag"] == before["etag"]
    assert len(await history(admin, before["object_id"])) == 1


async def test_get_ticket_is_the_seeds_answer_with_comments_and_files(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    seed = example(GET_RESPONSE)["data"]
    public, internal = seed["comments"]
    body = {key: seed[key] for key in ("title", "description", "priority", "tags", "custom_fields")}
    seed["custom_fields"] |= DEFAULTS
    jane = person(alpha, public["created_by"], ["customer"])
    support = person(alpha, internal["created_by"], ["agent"])
    await introduce(client, support)
    (file,) = seed["attachments"]
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    body["attachments"] = [
        {"filename": file["filename"], "content": base64.b64encode(png).decode(), "mime_type": file["mime_type"]}
    ]
    ticket = await create(client, jane, body)
    path = f"{V1}/tickets/{ticket['id']}"
    for bearer, comment in ((jane, public), (support, internal)):
        added = await client.post(
            f"{path}/comments",
            headers=v1_headers(bearer),
            json={"content": comment["content"], "is_internal": comment["is_internal"]},
        )
        assert added.status_code == 201, added.text
    assigned = await client.patch(path, headers=v1_headers(support), json={"assigned_to": "agent789"})
    assert assigned.status_code == 200, assigned.text
    response = await client.get(path, headers=v1_headers(support))
    assert response.status_code == 200, response.text
    answer = response.json()["data"]
    assert_seed_members(
        {k: v for k, v in answer.items() if k not in ("comments", "attachments")},
        {k: v for k, v in seed.items() if k not in ("comments", "attachments")},
    )
    assert list(answer) == list(seed)
    assert len(answer["comments"]) == 2
    for comment, expected in zip(answer["comments"], seed["comments"], strict=True):
        assert_seed_members({k: v for k, v in comment.items() if k != "attachments"}, expected)
    (shown,) = answer["attachments"]
    assert_seed_members(shown, file | {"size": len(png)})
    # The customer who asked sees its own ticket, without the internal note.
    own = await client.get(path, headers=v1_headers(jane))
    assert [c["content"] for c in own.json()["data"]["comments"]] == [public["content"]]


async def test_add_comment_is_the_seeds_request_and_answer(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    seed = example(COMMENT_RESPONSE)["data"]
    support = person(alpha, seed["created_by"], ["agent"])
    ticket = await create(client, support, {"title": "Server errors"})
    logs = b"2025-05-04 16:00:01 ERROR upstream timed out\n" * 10
    response = await client.post(
        f"{V1}/tickets/{ticket['id']}/comments",
        headers=v1_headers(support),
        json=with_files(example(COMMENT_REQUEST), logs),
    )
    assert response.status_code == 201, response.text
    answer = response.json()["data"]
    assert_seed_members(
        {k: v for k, v in answer.items() if k != "attachments"}, {k: v for k, v in seed.items() if k != "attachments"}
    )
    (file,) = answer["attachments"]
    assert_seed_members(file, seed["attachments"][0] | {"size": len(logs)})
    assert (await client.get(file["url"], headers=TenantApi.agent(client, alpha).headers)).content == logs


async def test_delete_ticket_answers_204_and_the_ticket_is_gone_from_both_surfaces(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await create(client, admin.bearer, {"title": "to delete"})
    object_id = (await v2_ticket(admin, ticket["id"]))["object_id"]
    path = f"{V1}/tickets/{ticket['id']}"
    headers = v1_headers(admin.bearer, **{"Idempotency-Key": str(uuid.uuid4())})
    deleted = await client.delete(path, headers=headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    # A retry under the same key gets the first answer; without one, the ticket is not found.
    replay = await client.delete(path, headers=headers)
    assert (replay.status_code, replay.headers.get("idempotent-replayed")) == (204, "true")
    not_found = {"error": {"code": "not_found", "message": "Ticket not found"}}
    for method in ("GET", "DELETE", "PATCH"):
        response = await client.request(method, path, headers=v1_headers(admin.bearer), json={"priority": "low"})
        assert (response.status_code, response.json()) == (404, not_found), method
    assert (await admin.get(object_id)).status_code == 404
    assert [event["event"] for event in await history(admin, object_id)] == ["ticket.created", "ticket.deleted"]


async def test_list_users_is_the_seeds_answer(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    seed = example(USERS_RESPONSE)
    (john,) = seed["data"]
    await introduce(client, person(alpha, john, ["admin"]))
    await introduce(client, token(alpha, roles=["agent"], subject="agent-7", name="Ann Agent", email="ann@example.com"))
    admin = token(alpha, roles=["admin"], scope=ADMIN_SCOPE, subject="user789")
    response = await client.get(f"{V1}/users", headers=v1_headers(admin), params={"role": "admin", "q": "john"})
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["data", "pagination"]
    (answer,) = response.json()["data"]
    assert list(answer) == list(john)
    assert {k: answer[k] for k in ("id", "name", "email", "role", "status")} == {
        k: john[k] for k in ("id", "name", "email", "role", "status")
    }
    assert SEED_TIME.fullmatch(answer["created_at"]) and answer["last_login_at"] is None
    agents = await client.get(f"{V1}/users", headers=v1_headers(admin), params={"role": "agent"})
    assert [user["id"] for user in agents.json()["data"]] == ["agent-7"]
    bad = await client.get(f"{V1}/users", headers=v1_headers(admin), params={"status": "gone"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
    assert [detail["field"] for detail in bad.json()["error"]["details"]] == ["status"]


async def test_login_is_the_seeds_request_and_answer(client: httpx.AsyncClient, tenant_factory: TenantFactory) -> None:
    gamma = await tenant_factory.fresh("gamma", builtin_realm=True)
    admin = TenantApi.admin(client, gamma)
    body = {"email": "user@example.com", "password": PASSWORD, "role": "agent", "name": "John Doe"}
    added = await client.post(USERS, json=body, headers=admin.headers)
    assert added.status_code == 201, added.text
    # The seed's body names no tenant; where several tenants have a builtin realm (as in this test server), the
    # tenant is named by its header.
    response = await client.post(f"{V1}/auth/login", json=example(LOGIN_REQUEST), headers={"x-tenantid": str(gamma.id)})
    assert response.status_code == 200, response.text
    seed = example(LOGIN_RESPONSE)
    answer = response.json()
    assert list(answer) == list(seed)
    assert list(answer["user"]) == list(seed["user"])
    assert answer["user"] == {
        "id": added.json()["id"],
        "name": "John Doe",
        "email": "user@example.com",
        "role": "agent",
    }
    assert SEED_TIME.fullmatch(answer["expires_at"])
    # The token works on v1 alone: tenant and realm come from it.
    listed = await client.get(f"{V1}/tickets", headers=v1_headers(answer["token"]))
    assert listed.status_code == 200, listed.text
    wrong = await client.post(
        f"{V1}/auth/login", json={**example(LOGIN_REQUEST), "password": "wrong"}, headers={"x-tenantid": str(gamma.id)}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    several = await client.post(f"{V1}/auth/login", json=example(LOGIN_REQUEST))
    assert several.status_code == 400, several.text
    assert [detail["field"] for detail in several.json()["error"]["details"]] == ["x-tenantid"]


def test_a_sign_in_that_names_no_tenant_means_the_one_tenant_with_a_builtin_realm(
    tenant_factory: TenantFactory,
) -> None:
    alpha = tenant_factory.spec("alpha")
    gamma = tenant_factory.spec("gamma", builtin_realm=True)
    delta = tenant_factory.spec("delta", builtin_realm=True)
    by_id = {config.id: Tenant(config) for config in tenant_factory.configs(alpha, gamma, delta)}
    plain, one, two = by_id[alpha.id], by_id[gamma.id], by_id[delta.id]
    assert sole_sign_in_tenant([plain, one]) == gamma.id
    assert sole_sign_in_tenant([plain]) is None
    assert sole_sign_in_tenant([plain, one, two]) is None


# --- the list: filters, search, sort, pagination ----------------------------------------------------------------------


async def test_list_filters_searches_sorts_and_pages(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    jane = token(alpha, roles=["customer"], subject="user456")
    agent = token(alpha, roles=["agent"], subject="agent789")
    made = {
        "low": await create(client, jane, {"title": "Printer jams", "priority": "low"}),
        "medium": await create(client, agent, {"title": "Cannot export reports", "priority": "medium"}),
        "high": await create(
            client, jane, {"title": "Dashboard 404", "description": "export fails", "priority": "high"}
        ),
        "critical": await create(client, agent, {"title": "Site down", "priority": "critical"}),
    }
    for ticket_id, change in (
        (made["high"]["id"], {"status": "in_progress", "assigned_to": "agent789"}),
        (made["critical"]["id"], {"status": "closed"}),
    ):
        response = await client.patch(f"{V1}/tickets/{ticket_id}", headers=v1_headers(agent), json=change)
        assert response.status_code == 200, response.text
    # A ticket of another type (seeds 000/001's) is not one of seed 004's.
    admin = TenantApi.admin(client, alpha)
    fac = await admin.ticket_type("FAC")
    assert (
        await admin.create(fac["id"], {field_ids(fac)["title"]: "Facility", field_ids(fac)["category"]: "OTHER"})
    ).status_code == 201

    async def titles(**params: str) -> list[str]:
        response = await client.get(f"{V1}/tickets", headers=v1_headers(agent), params=params)
        assert response.status_code == 200, (params, response.text)
        return [ticket["title"] for ticket in response.json()["data"]]

    by = {name: ticket["title"] for name, ticket in made.items()}
    assert await titles(sort="priority", order="asc") == [by["low"], by["medium"], by["high"], by["critical"]]
    assert await titles(sort="priority") == [by["critical"], by["high"], by["medium"], by["low"]]
    assert await titles(sort="created_at", order="asc") == [by["low"], by["medium"], by["high"], by["critical"]]
    assert await titles(sort="updated_at") == [by["critical"], by["high"], by["medium"], by["low"]]
    assert await titles(status="open", order="asc") == [by["low"], by["medium"]]
    assert await titles(status="in_progress") == [by["high"]]
    assert await titles(status="closed") == [by["critical"]]
    assert await titles(status="resolved") == []
    assert await titles(priority="high") == [by["high"]]
    assert await titles(assigned_to="agent789") == [by["high"]]
    assert await titles(created_by="user456", order="asc") == [by["low"], by["high"]]
    assert await titles(q="export", order="asc") == [by["medium"], by["high"]]
    # A customer sees its own tickets only.
    own = await client.get(f"{V1}/tickets", headers=v1_headers(jane), params={"order": "asc"})
    assert [ticket["title"] for ticket in own.json()["data"]] == [by["low"], by["high"]]

    first = await client.get(f"{V1}/tickets", headers=v1_headers(agent), params={"per_page": "3", "sort": "priority"})
    pages = first.json()["pagination"]
    next_page = urlsplit(pages.pop("next_page_url"))
    assert (next_page.path, dict(parse_qsl(next_page.query))) == (
        "/api/v1/tickets",
        {"per_page": "3", "sort": "priority", "page": "2"},
    )
    assert pages == {"total": 4, "per_page": 3, "current_page": 1, "last_page": 2, "prev_page_url": None}
    assert list(first.json()["pagination"]) == list(example(PAGINATION)["pagination"])
    second = await client.get(f"{V1}/tickets", headers=v1_headers(agent), params={"page": "2", "per_page": "3"})
    assert len(second.json()["data"]) == 1
    previous = urlsplit(second.json()["pagination"]["prev_page_url"])
    assert dict(parse_qsl(previous.query)) == {"per_page": "3", "page": "1"}
    listed = (await client.get(f"{V1}/tickets", headers=v1_headers(agent))).json()["data"][0]
    assert list(listed)[: len(example(LIST_RESPONSE)["data"][0])] == list(example(LIST_RESPONSE)["data"][0])

    for params, field in (
        ({"status": "done"}, "status"),
        ({"priority": "urgent"}, "priority"),
        ({"sort": "title"}, "sort"),
        ({"order": "up"}, "order"),
        ({"per_page": "101"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"colour": "red"}, "colour"),
    ):
        response = await client.get(f"{V1}/tickets", headers=v1_headers(agent), params=params)
        assert response.status_code == 400, (params, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input", params
        assert [detail["field"] for detail in error["details"]] == [field], params


# --- v1 and v2 together -----------------------------------------------------------------------------------------------


async def test_concurrent_patches_of_different_members_are_all_kept(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = token(alpha, roles=["agent"], subject="agent789")
    admin = TenantApi.admin(client, alpha)
    ticket = await create(client, agent, {"title": "busy", "priority": "low"})
    path = f"{V1}/tickets/{ticket['id']}"
    before = await v2_ticket(admin, ticket["id"])
    counter = field_ids(await admin.ticket_type("REQ"))["counter"]

    async def v2_increment() -> None:
        for _ in range(8):
            current = await v2_ticket(admin, ticket["id"])
            response = await admin.update(
                current["object_id"], {"etag": current["etag"], "ticketUpdate": {counter: current["data"][counter] + 1}}
            )
            if response.status_code == 200:
                return
        raise AssertionError("the v2 write never got in")

    results = await asyncio.gather(
        client.patch(path, headers=v1_headers(agent), json={"priority": "critical"}),
        client.patch(path, headers=v1_headers(agent), json={"assigned_to": "agent-2"}),
        client.patch(path, headers=v1_headers(agent), json={"status": "resolved"}),
        v2_increment(),
    )
    for response in results[:3]:
        assert response.status_code == 200, response.text
    after = await v2_ticket(admin, ticket["id"])
    shown = (await client.get(path, headers=v1_headers(agent))).json()["data"]
    assert (shown["priority"], shown["assigned_to"]["id"], shown["status"]) == ("critical", "agent-2", "resolved")
    assert after["data"][counter] == before["data"][counter] + 1


# --- the session cookie -----------------------------------------------------------------------------------------------


async def test_sign_in_sets_a_session_cookie_that_v1_accepts_with_its_csrf_token_for_writes(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    gamma = await tenant_factory.fresh("gamma", builtin_realm=True)
    admin = TenantApi.admin(client, gamma)
    body = {"email": "user@example.com", "password": PASSWORD, "role": "agent"}
    assert (await client.post(USERS, json=body, headers=admin.headers)).status_code == 201
    response = await client.post(f"{V1}/auth/login", json=example(LOGIN_REQUEST), headers={"x-tenantid": str(gamma.id)})
    assert response.status_code == 200, response.text
    client.cookies.clear()  # every request below says which cookies it sends
    cookies: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookies.load(header)
    session, csrf = cookies["session"], cookies["csrf_token"]
    assert session.value == response.json()["token"]
    # The session for v1 alone; its CSRF token where any page of this origin can read it.
    for cookie, path, http_only in ((session, "/api/v1", True), (csrf, "/", False)):
        assert (cookie["path"], cookie["samesite"].lower(), bool(cookie["secure"]), bool(cookie["httponly"])) == (
            path,
            "strict",
            True,
            http_only,
        )
        assert 0 < int(cookie["max-age"]) <= 900
    assert csrf.value != session.value
    with_cookie = {"accept": "application/json", "cookie": f"session={session.value}; csrf_token={csrf.value}"}

    # Reads need the cookie alone; the tenant and realm come from the token it holds.
    listed = await client.get(f"{V1}/tickets", headers=with_cookie)
    assert listed.status_code == 200, listed.text
    # A write authenticated by the cookie needs the CSRF token in its header (another site's form cannot send it).
    refusal = {
        "error": {
            "code": "csrf_token_invalid",
            "message": "A write authenticated by the session cookie needs the x-csrf-token header with the "
            "csrf_token cookie's value",
        }
    }
    for header in ({}, {"x-csrf-token": "forged"}, {"x-csrf-token": session.value}):
        forged = await client.post(f"{V1}/tickets", headers=with_cookie | header, json={"title": "forged"})
        assert (forged.status_code, forged.json()) == (403, refusal), header
    assert (await client.get(f"{V1}/tickets", headers=with_cookie)).json()["pagination"]["total"] == 0
    created = await client.post(
        f"{V1}/tickets", headers=with_cookie | {"x-csrf-token": csrf.value}, json={"title": "from the browser"}
    )
    assert created.status_code == 201, created.text
    # Seeds 000/001's routes take the session too, each refusal in its own envelope.
    fac = await admin.ticket_type("FAC")
    facility = await admin.create(fac["id"], {field_ids(fac)["title"]: "Lift", field_ids(fac)["category"]: "OTHER"})
    status_path = f"{V1}/tickets/{facility.json()['id']}/status"
    refused = await client.patch(status_path, headers=with_cookie, json={"status": "IN_PROGRESS"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "CSRF_TOKEN_INVALID")
    moved = await client.patch(
        status_path, headers=with_cookie | {"x-csrf-token": csrf.value}, json={"status": "IN_PROGRESS"}
    )
    assert (moved.status_code, moved.json()["status"]) == (200, "IN_PROGRESS")
    # A session that holds no valid token is no session; v2 does not read the cookie at all.
    stale = await client.get(f"{V1}/tickets", headers={"cookie": "session=not-a-token"})
    assert (stale.status_code, stale.json()["error"]["code"]) == (401, "unauthorized")
    v2 = await client.get(TICKETS, headers={"cookie": with_cookie["cookie"], "x-tenantid": str(gamma.id)})
    assert v2.status_code == 401, v2.text
    # Another application's `session` cookie (for /, so sent after ours) and a malformed pair do not hide ours.
    crowded = {"cookie": f"junk; session={session.value}; session=someone-elses", "accept": "application/json"}
    assert (await client.get(f"{V1}/tickets", headers=crowded)).status_code == 200
    # A request with an Authorization header is not cookie-authenticated: no CSRF token needed.
    bearer = v1_headers(session.value, cookie=with_cookie["cookie"])
    assert (await client.post(f"{V1}/tickets", headers=bearer, json={"title": "integration"})).status_code == 201


async def test_a_v1_patch_is_delivered_as_its_v2_events_signed(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    # Seed 004's example actor: the token's name and email claims put them in the users directory on its first call.
    agent = token(alpha, roles=["agent"], subject="agent789", name="Support Agent", email="agent@example.com")
    ticket = await create(client, agent, {"title": "Cannot export reports", "priority": "medium"})
    with Receiver() as receiver:
        subscribed = await client.post(
            f"{API}/webhook",
            headers=admin.headers,
            json={"url": receiver.url, "events": ["ticket.updated", "ticket.status_changed"]},
        )
        assert subscribed.status_code == 201, subscribed.text
        patched = await client.patch(
            f"{V1}/tickets/{ticket['id']}",
            headers=v1_headers(agent),
            json={"status": "in_progress", "priority": "high"},
        )
        assert patched.status_code == 200, patched.text
        arrived = await receiver.wait_for(2)
        bodies = [request.verified(subscribed.json()["secret"]) for request in arrived]
    priority = field_ids(await admin.ticket_type("REQ"))["priority"]
    updated, moved = bodies
    assert (updated["event"], updated["data"]["ticket"]["id"]) == ("ticket.updated", ticket["id"])
    assert updated["data"]["ticket"]["changes"] == {priority: {"previous": "normal", "current": "high"}}
    seed_actor = {"id": "agent789", "name": "Support Agent", "email": "agent@example.com"}
    assert updated["data"]["ticket"]["updated_by"] == moved["data"]["ticket"]["updated_by"] == seed_actor
    # Seed 004's example, verbatim: the status in its own values, as the PATCH set it.
    assert (moved["event"], moved["data"]["ticket"]["status"]) == (
        "ticket.status_changed",
        {"previous": "open", "current": "in_progress"},
    )
    assert moved["data"]["ticket"]["state"] == {"previous": "new", "current": "open"}


# --- what else the routes refuse, and retries -------------------------------------------------------------------------


async def test_seed_004_routes_name_only_tickets_of_its_type(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    fac = await admin.ticket_type("FAC")
    fields = field_ids(fac)
    facility = await admin.create(fac["id"], {fields["title"]: "Lift", fields["category"]: "OTHER"})
    path = f"{V1}/tickets/{facility.json()['id']}"
    not_found = {"error": {"code": "not_found", "message": "Ticket not found"}}
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"priority": "low"}),
        ("DELETE", "", None),
        ("POST", "/comments", {"content": "hello"}),
    ):
        response = await client.request(method, path + suffix, headers=v1_headers(admin.bearer), json=body)
        assert (response.status_code, response.json()) == (404, not_found), method
    # Seed 000/001's routes still reach it.
    assert (await client.get(f"{V1}/tickets/not-a-uuid", headers=v1_headers(admin.bearer))).status_code == 404
    assert (await admin.get(facility.json()["objectId"])).json()["etag"] == facility.json()["etag"]


async def test_comments_refused_by_who_or_what(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    customer = token(alpha, roles=["customer"], subject="user456")
    ticket = await create(client, customer, {"title": "My printer"})
    path = f"{V1}/tickets/{ticket['id']}/comments"
    internal = await client.post(path, headers=v1_headers(customer), json={"content": "psst", "is_internal": True})
    assert (internal.status_code, internal.json()["error"]["code"]) == (403, "forbidden")
    missing = await client.post(path, headers=v1_headers(customer), json={"is_internal": False})
    assert (missing.status_code, missing.json()["error"]["details"]) == (
        400,
        [{"field": "content", "message": "required"}],
    )
    blank = await client.post(path, headers=v1_headers(customer), json={"content": "<script>x</script>"})
    assert (blank.status_code, blank.json()["error"]["code"]) == (422, "validation_error")
    assert [d["field"] for d in blank.json()["error"]["details"]] == ["content"]
    shown = await client.get(f"{V1}/tickets/{ticket['id']}", headers=v1_headers(customer))
    assert shown.json()["data"]["comments"] == []


async def test_writes_retried_with_their_idempotency_key_answer_once(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = token(alpha, roles=["agent"], subject="agent789")
    admin = TenantApi.admin(client, alpha)

    async def twice(
        method: str, path: str, body: dict[str, Any], other: dict[str, Any]
    ) -> tuple[httpx.Response, httpx.Response]:
        """The write, its retry under the same key (the first answer again), and another body under it (refused)."""
        headers = v1_headers(agent, **{"Idempotency-Key": str(uuid.uuid4())})
        first = await client.request(method, path, headers=headers, json=body)
        again = await client.request(method, path, headers=headers, json=body)
        reused = await client.request(method, path, headers=headers, json=other)
        assert (reused.status_code, reused.json()["error"]["code"]) == (422, "idempotency_key_reused"), reused.text
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        return first, again

    created, recreated = await twice("POST", f"{V1}/tickets", {"title": "once"}, {"title": "other"})
    assert (created.status_code, recreated.status_code) == (201, 201)
    assert created.json()["data"]["id"] == recreated.json()["data"]["id"]
    ticket_id = created.json()["data"]["id"]
    patched, repatched = await twice("PATCH", f"{V1}/tickets/{ticket_id}", {"priority": "high"}, {"priority": "low"})
    assert patched.json() == repatched.json()
    commented, recommented = await twice(
        "POST", f"{V1}/tickets/{ticket_id}/comments", {"content": "once", "is_internal": True}, {"content": "other"}
    )
    assert commented.json() == recommented.json()
    listed = await client.get(f"{V1}/tickets", headers=v1_headers(agent))
    assert listed.json()["pagination"]["total"] == 1
    object_id = (await v2_ticket(admin, ticket_id))["object_id"]
    assert [event["event"] for event in await history(admin, object_id)] == [
        "ticket.created",
        "ticket.updated",
        "comment.created",
    ]
