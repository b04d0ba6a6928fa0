"""Deletion through the real server: `DELETE .../ticket/{objectId}` answers 204 (seed 004), honours If-Match (412
PRECONDITION_FAILED when stale, 400 when malformed) and Idempotency-Key, and is soft: the row and its events stay,
so a deleted ticket is 404 by every route, its display ID is never given out again, and its history (and its
versions before the deletion) stay readable for administrators. Who may call is tests/integration/test_auth_matrix.py's.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.db.database import Database
from app.ticket.repository import TicketRepository
from tests.support import (
    ADMIN_SCOPE,
    ALPHA_ROLES,
    PRECONDITION_FAILED,
    TICKETS,
    TenantApi,
    TenantFactory,
    TenantSpec,
    by_name,
    field_ids,
    invalid,
    new_ticket,
    permission_failure,
    ticket_not_found,
    timestamp,
    token,
)

BAD_IF_MATCH = invalid(
    "Invalid request headers", {"If-Match": 'the ticket\'s etag in quotes ("<etag>"), a list of them, or *'}
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def read(api: TenantApi, object_id: str, **params: str) -> dict[str, Any]:
    response = await api.http.get(f"{TICKETS}/{object_id}", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def a_ticket(api: TenantApi, title: str = "Delete me") -> dict[str, Any]:
    """A new REQ ticket's GET document."""
    request_type = await api.ticket_type("REQ")
    created = await new_ticket(api, request_type["id"], {field_ids(request_type)["title"]: title})
    return await read(api, created["objectId"])


async def full_history(api: TenantApi, object_id: str) -> list[dict[str, Any]]:
    response = await api.history(object_id, per_page="100")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def deleted(response: httpx.Response) -> None:
    assert (response.status_code, response.content) == (204, b""), response.text


async def test_delete_answers_204_and_the_ticket_is_gone_from_every_route(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    kept = await a_ticket(agent, "Keep me")
    object_id, etag = ticket["object_id"], ticket["etag"]
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]

    deleted(await admin.delete(object_id))

    gone = (404, ticket_not_found(object_id))
    for api in (agent, admin):
        for response in (
            await api.get(object_id),
            await api.update(object_id, {"etag": etag, "ticketUpdate": {counter: 1}}),
            await api.change_status(object_id, {"etag": etag, "state": "open"}),
            await api.assign(object_id, {"etag": etag, "assignee": "ada"}),
        ):
            assert (response.status_code, response.json()) == gone, (response.request.method, response.request.url)
    for response in (await admin.delete(object_id), await admin.delete(object_id, **{"If-Match": f'"{etag}"'})):
        assert (response.status_code, response.json()) == gone
    # An agent cannot read its history or any version of it either.
    for response in (
        await agent.history(object_id),
        await client.get(f"{TICKETS}/{object_id}", params={"asOfEtag": etag}, headers=agent.headers),
        await client.get(f"{TICKETS}/{object_id}", params={"asOf": ticket["updated_at"]}, headers=agent.headers),
    ):
        assert (response.status_code, response.json()) == gone, response.request.url
    listed = await client.get(TICKETS, params={"per_page": "100"}, headers=agent.headers)
    assert [t["object_id"] for t in listed.json()["data"]] == [kept["object_id"]]
    assert listed.json()["pagination"]["total"] == 1
    assert await read(agent, kept["object_id"]) == kept


async def test_the_deletion_is_one_event_and_the_row_stays(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Connection
) -> None:
    admin = TenantApi.admin(client, alpha, subject="remover")
    ticket = await a_ticket(admin)
    response = await client.delete(
        f"{TICKETS}/{ticket['object_id']}", headers={**admin.headers, "x-request-id": "delete-request"}
    )
    deleted(response)
    row = await db.fetchrow(
        "SELECT deleted_at, updated_by, etag, event_sequence FROM ticket WHERE tenant_id = $1 AND id = $2",
        alpha.id,
        uuid.UUID(ticket["id"]),
    )
    assert row is not None and row["deleted_at"] is not None
    assert (row["updated_by"], row["event_sequence"]) == ("remover", 2)
    event = await db.fetchrow(
        "SELECT kind, actor, request_id, etag, created_at, state_id, sequence FROM ticket_event "
        "WHERE tenant_id = $1 AND ticket_id = $2 AND sequence = 2",
        alpha.id,
        uuid.UUID(ticket["id"]),
    )
    assert event is not None
    assert (event["kind"], event["actor"], event["request_id"]) == ("ticket.deleted", "remover", "delete-request")
    assert (event["etag"], event["created_at"], str(event["state_id"])) == (
        row["etag"],
        row["deleted_at"],
        ticket["state_id"],
    )


async def test_an_administrator_reads_the_history_and_earlier_versions_of_a_deleted_ticket(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha, subject="auditor")
    agent = TenantApi.agent(client, alpha, subject="worker")
    ticket = await a_ticket(agent)
    assigned = await agent.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "worker"})
    assert assigned.status_code == 200
    last = await read(agent, ticket["object_id"])
    before = await full_history(admin, ticket["object_id"])

    deleted(await admin.delete(ticket["object_id"]))

    history = await full_history(admin, ticket["object_id"])
    assert history[:-1] == before
    deletion = history[-1]
    assert (deletion["sequence"], deletion["event"], deletion["actor"]) == (3, "ticket.deleted", "auditor")
    # The deletion changes nothing else: no field, state, pending time or assignee.
    assert (deletion["changes"], deletion["state"], deletion["pending_until"], deletion["assignee"]) == (
        {},
        None,
        None,
        None,
    )
    # Every version before the deletion, as it was; at or after the deletion there is no ticket to show.
    assert await read(admin, ticket["object_id"], asOfEtag=ticket["etag"]) == ticket
    assert await read(admin, ticket["object_id"], asOfEtag=last["etag"]) == last
    assert await read(admin, ticket["object_id"], asOf=last["updated_at"]) == last
    for params, named in (
        ({"asOfEtag": deletion["etag"]}, deletion["etag"]),
        ({"asOf": deletion["at"]}, timestamp(deletion["at"]).isoformat()),
    ):
        response = await client.get(f"{TICKETS}/{ticket['object_id']}", params=params, headers=admin.headers)
        assert (response.status_code, response.json()) == (
            404,
            {"error": True, "message": f"Ticket not found ({ticket['object_id']} as of {named})"},
        )
    # Still not found for the administrator as a ticket.
    assert (await admin.get(ticket["object_id"])).status_code == 404


async def test_only_an_administrator_with_the_admin_scope_audits(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await a_ticket(admin)
    deleted(await admin.delete(ticket["object_id"]))
    gone = (404, ticket_not_found(ticket["object_id"]))
    for roles, scope in ((["admin"], "tickets:read tickets:write"), (["agent", "viewer"], ADMIN_SCOPE)):
        caller = TenantApi(client, alpha, token(alpha, roles=roles, scope=scope))
        response = await caller.history(ticket["object_id"])
        assert (response.status_code, response.json()) == gone, roles


async def test_a_stale_if_match_is_412_and_changes_nothing(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await a_ticket(admin)
    assigned = await admin.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "ada"})
    current = await read(admin, ticket["object_id"])
    history = await full_history(admin, ticket["object_id"])
    for if_match in (
        f'"{ticket["etag"]}"',  # the etag before the assignment
        f'W/"{current["etag"]}"',  # a weak tag never matches: If-Match compares strongly
        f'"{uuid.uuid4()}", "{ticket["etag"]}"',
        '"not-an-etag-we-issued"',
        '""',
        "",  # an empty list: no etag matches
        ", ,",
    ):
        response = await admin.delete(ticket["object_id"], **{"If-Match": if_match})
        assert (response.status_code, response.json()) == (412, PRECONDITION_FAILED), if_match
    assert await read(admin, ticket["object_id"]) == current
    assert await full_history(admin, ticket["object_id"]) == history
    assert assigned.json()["etag"] == current["etag"]


@pytest.mark.parametrize(
    "form",
    [
        '"{etag}"',
        '"{stale}", "{etag}"',
        '"{stale}",W/"x" ,\t"{etag}"',
        '"{etag}",',
        ', ,"{etag}"',
        '"a,b", "{etag}"',
        "*",
    ],
)
async def test_a_current_if_match_deletes(client: httpx.AsyncClient, alpha: TenantSpec, form: str) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await a_ticket(admin)
    if_match = form.format(etag=ticket["etag"], stale=uuid.uuid4())
    deleted(await admin.delete(ticket["object_id"], **{"If-Match": if_match}))
    assert (await admin.get(ticket["object_id"])).status_code == 404


@pytest.mark.parametrize(
    "if_match",
    [
        "{etag}",  # an entity tag is quoted
        '"{etag}',
        '"{etag}" "{etag}"',
        '*, "{etag}"',
        "*,",
        "**",
        'w/"{etag}"',
        '"with space"',
        '"quote"inside"',
    ],
)
async def test_a_malformed_if_match_is_400_and_changes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec, if_match: str
) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await a_ticket(admin)
    response = await admin.delete(ticket["object_id"], **{"If-Match": if_match.format(etag=ticket["etag"])})
    assert (response.status_code, response.json()) == (400, BAD_IF_MATCH)
    assert await read(admin, ticket["object_id"]) == ticket


async def test_an_unknown_or_another_tenants_ticket_is_404(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    owner = TenantApi.agent(client, alpha)
    ticket = await a_ticket(owner)
    stranger = TenantApi.admin(client, beta)
    for object_id in (ticket["object_id"], "REQ-9999", "req-0001", ticket["id"]):
        for headers in ({}, {"If-Match": f'"{ticket["etag"]}"'}):
            response = await stranger.delete(object_id, **headers)
            assert (response.status_code, response.json()) == (404, ticket_not_found(object_id)), object_id
    assert await read(owner, ticket["object_id"]) == ticket


async def test_a_display_id_is_never_given_out_again(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    first = await a_ticket(admin)
    second = await a_ticket(admin)
    deleted(await admin.delete(second["object_id"]))
    deleted(await admin.delete(first["object_id"]))
    third = await a_ticket(admin)
    assert [t["object_id"] for t in (first, second, third)] == ["REQ-0001", "REQ-0002", "REQ-0003"]
    assert (await admin.get("REQ-0002")).status_code == 404


async def test_a_retried_delete_with_its_idempotency_key_replays_the_204(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await a_ticket(admin)
    other = await a_ticket(admin)
    first = await admin.delete(ticket["object_id"], **{"Idempotency-Key": "delete-1"})
    deleted(first)
    assert "idempotent-replayed" not in first.headers
    retry = await admin.delete(ticket["object_id"], **{"Idempotency-Key": "delete-1"})
    deleted(retry)
    assert retry.headers["idempotent-replayed"] == "true"
    # Without the key it is an ordinary request for a ticket that is gone; with it, for another ticket, a reuse.
    assert (await admin.delete(ticket["object_id"])).status_code == 404
    reused = await admin.delete(other["object_id"], **{"Idempotency-Key": "delete-1"})
    assert (reused.status_code, reused.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert await read(admin, other["object_id"]) == other
    history = await full_history(admin, ticket["object_id"])
    assert [entry["event"] for entry in history] == ["ticket.created", "ticket.deleted"]


async def test_a_refused_delete_does_not_use_up_its_key(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await a_ticket(admin)
    stale = await admin.delete(ticket["object_id"], **{"If-Match": f'"{uuid.uuid4()}"', "Idempotency-Key": "k"})
    assert stale.status_code == 412
    deleted(await admin.delete(ticket["object_id"], **{"If-Match": f'"{ticket["etag"]}"', "Idempotency-Key": "k"}))


async def test_who_may_delete_is_set_in_the_tenant_file(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    """By default the admin roles delete; a tenant naming its `delete` roles replaces that."""
    tenant = await tenant_factory.fresh("deleters", roles={**ALPHA_ROLES, "delete": ["agent"]})
    agent = TenantApi.agent(client, tenant)
    admin = TenantApi.admin(client, tenant)
    ticket = await a_ticket(agent)
    refused = await admin.delete(ticket["object_id"])
    assert (refused.status_code, refused.json()) == (401, permission_failure("delete the ticket"))
    assert await read(agent, ticket["object_id"]) == ticket
    deleted(await agent.delete(ticket["object_id"]))


async def test_a_deleted_ticket_is_never_moved_by_the_pending_close_timer(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Connection, database_url: str
) -> None:
    admin = TenantApi.admin(client, alpha)
    ticket = await a_ticket(admin)
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    pending = await admin.change_status(
        ticket["object_id"], {"etag": ticket["etag"], "state": "pending close", "pendingUntil": soon}
    )
    assert pending.status_code == 200, pending.text
    deleted(await admin.delete(ticket["object_id"]))
    # Its time comes after the deletion.
    await db.execute(
        "UPDATE ticket SET pending_until = now() - interval '1 minute' WHERE tenant_id = $1 AND id = $2",
        alpha.id,
        uuid.UUID(ticket["id"]),
    )
    database = Database(database_url, min_size=1, max_size=1)
    await database.open()
    try:
        repository = TicketRepository(database)
        assert alpha.id not in await repository.tenants_with_due_tickets()
        assert await repository.close_due(alpha.id, 10, uuid.uuid4(), "system", "sweep", "due") == 0
    finally:
        await database.close()
    history = await full_history(admin, ticket["object_id"])
    assert [entry["event"] for entry in history] == ["ticket.created", "ticket.status_changed", "ticket.deleted"]
    assert pending.json()["state_id"] == (await by_name(admin, "pending close"))["id"]
