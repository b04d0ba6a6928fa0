"""Idempotency-Key on every write: a retry with the same key and request gets the first answer again (with
Idempotent-Replayed: true) and writes nothing; the key with another request is 422; keys belong to one caller
(tenant, realm, subject) and expire."""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from app.auth.jwt import MAX_TOKEN_LENGTH
from app.db.database import Database
from app.idempotency.repository import DELETE_EXPIRED, IdempotencyRepository
from app.ticket.sweeps import ExpiredIdempotencyKeySweep
from tests.support import (
    CATALOG,
    GATE_TIMEOUT,
    INVALID_TOKEN,
    LOCK_TICKETS,
    STATES,
    STATUS_CHANGED,
    TICKETS,
    TYPES,
    UPDATED,
    WAITING,
    LiveServer,
    TenantApi,
    TenantFactory,
    TenantSpec,
    by_name,
    create_type,
    field_ids,
    invalid,
    list_states,
    make_settings,
    named,
    new_definition,
    new_field,
    new_ticket,
    token,
)

LONGEST_SUBJECT = 255  # OpenID Connect Core 1.0, section 2; a longer sub is refused with the token
KEY_REUSED = {
    "error": True,
    "code": "IDEMPOTENCY_KEY_REUSED",
    "message": "This Idempotency-Key was already used with a different request body",
    "status": 422,
}


async def a_ticket(api: TenantApi) -> tuple[dict[str, Any], dict[str, str]]:
    request_type = await api.ticket_type("REQ")
    fields = field_ids(request_type)
    return await new_ticket(api, request_type["id"], {fields["title"]: "Retried"}), fields


async def events(api: TenantApi, object_id: str) -> list[str]:
    response = await api.http.get(f"{TICKETS}/{object_id}/history", params={"per_page": 100}, headers=api.headers)
    assert response.status_code == 200
    return [entry["event"] for entry in response.json()["data"]]


async def test_a_retried_update_gets_the_first_answer_and_writes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket, fields = await a_ticket(agent)
    body = {"etag": ticket["etag"], "ticketUpdate": {fields["counter"]: 1}}
    first = await agent.update(ticket["objectId"], body, **{"Idempotency-Key": "update-1"})
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    # The ticket's etag has moved on, so without the key this retry would be a stale-etag 400.
    again = await agent.update(ticket["objectId"], body, **{"Idempotency-Key": "update-1"})
    assert again.status_code == 200, again.text
    assert (
        again.json() == first.json() == {**UPDATED, "etag": first.json()["etag"], **named(await by_name(agent, "new"))}
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert await events(agent, ticket["objectId"]) == ["ticket.created", "ticket.updated"]
    # The same key with another request is refused, and writes nothing.
    other = {"etag": first.json()["etag"], "ticketUpdate": {fields["counter"]: 2}}
    refused = await agent.update(ticket["objectId"], other, **{"Idempotency-Key": "update-1"})
    assert (refused.status_code, refused.json()) == (422, KEY_REUSED)
    assert (await agent.get(ticket["objectId"])).json()["etag"] == first.json()["etag"]


async def test_a_retried_status_change_gets_the_first_answer_and_writes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket, _ = await a_ticket(agent)
    body = {"etag": ticket["etag"], "state": "open", "note": "on it"}
    first = await agent.change_status(ticket["objectId"], body, **{"Idempotency-Key": "status-1"})
    assert first.status_code == 200, first.text
    again = await agent.change_status(ticket["objectId"], body, **{"Idempotency-Key": "status-1"})
    assert again.status_code == 200, again.text
    expected = {**STATUS_CHANGED, "etag": first.json()["etag"], **named(await by_name(agent, "open"))}
    assert again.json() == first.json() == expected
    assert again.headers["idempotent-replayed"] == "true"
    assert await events(agent, ticket["objectId"]) == ["ticket.created", "ticket.status_changed"]
    # A key used for a status change is not a key for an update of the same ticket.
    request_type = await agent.ticket_type("REQ")
    valid = {"etag": first.json()["etag"], "ticketUpdate": {field_ids(request_type)["counter"]: 1}}
    reused = await agent.update(ticket["objectId"], valid, **{"Idempotency-Key": "status-1"})
    assert (reused.status_code, reused.json()) == (422, KEY_REUSED)


async def test_a_refused_write_does_not_use_up_its_key(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket, fields = await a_ticket(agent)
    stale = {"etag": "00000000-0000-4000-8000-000000000000", "ticketUpdate": {fields["counter"]: 1}}
    assert (await agent.update(ticket["objectId"], stale, **{"Idempotency-Key": "k"})).status_code == 400
    fresh = {"etag": ticket["etag"], "ticketUpdate": {fields["counter"]: 1}}
    # Another request under the key is fine: the refused one stored nothing.
    written = await agent.update(ticket["objectId"], fresh, **{"Idempotency-Key": "k"})
    assert written.status_code == 200, written.text
    assert "idempotent-replayed" not in written.headers


async def test_a_retried_create_replays_after_its_type_was_archived(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    """The key is looked up before the request is checked against its ticket type: a retry of a stored request gets
    the stored answer although the type would refuse the request now, and another request under the key is 422
    whether or not the type would take it."""
    admin, agent = TenantApi.admin(client, alpha), TenantApi.agent(client, alpha)
    definition = new_definition()
    probe = await create_type(client, admin, definition)
    title = definition["fields"][0]["id"]
    first = await agent.create(probe["id"], {title: "Before"}, **{"Idempotency-Key": "create-then-archive"})
    assert first.status_code == 201, first.text
    archived = await client.delete(f"{TYPES}/{probe['id']}", headers=admin.headers)
    assert archived.status_code == 200, archived.text

    no_type = invalid("Invalid ticket type", {"ticketTypeId": "no active ticket type with this id in the tenant"})
    refused = await agent.create(probe["id"], {title: "Before"})
    assert (refused.status_code, refused.json()) == (400, no_type)
    again = await agent.create(probe["id"], {title: "Before"}, **{"Idempotency-Key": "create-then-archive"})
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (201, first.json(), "true")
    other = await agent.create(probe["id"], {title: "Other"}, **{"Idempotency-Key": "create-then-archive"})
    assert (other.status_code, other.json()) == (422, KEY_REUSED)


async def test_a_retried_update_replays_after_a_new_type_version_refuses_its_value(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin, agent = TenantApi.admin(client, alpha), TenantApi.agent(client, alpha)
    size = new_field("size", {"type": "integer", "maximum": 100})
    definition = new_definition(size)
    probe = await create_type(client, admin, definition)
    ticket = await new_ticket(agent, probe["id"], {size["id"]: 1})
    body = {"etag": ticket["etag"], "ticketUpdate": {size["id"]: 50}}
    first = await agent.update(ticket["objectId"], body, **{"Idempotency-Key": "update-then-tighten"})
    assert first.status_code == 200, first.text
    size["schema"] = {"type": "integer", "maximum": 10}
    tightened = await client.put(f"{TYPES}/{probe['id']}", headers=admin.headers, json=definition)
    assert (tightened.status_code, tightened.json()["version"]) == (200, 2), tightened.text

    now_invalid = {"etag": first.json()["etag"], "ticketUpdate": {size["id"]: 50}}
    refused = await agent.update(ticket["objectId"], now_invalid)
    assert (refused.status_code, refused.json()["validationResult"]["reason"]) == (
        400,
        {size["id"]: "50 is greater than the maximum of 10"},
    )
    again = await agent.update(ticket["objectId"], body, **{"Idempotency-Key": "update-then-tighten"})
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (200, first.json(), "true")
    other = await agent.update(ticket["objectId"], now_invalid, **{"Idempotency-Key": "update-then-tighten"})
    assert (other.status_code, other.json()) == (422, KEY_REUSED)
    assert await events(agent, ticket["objectId"]) == ["ticket.created", "ticket.updated"]


async def waiting_for_locks(db: asyncpg.Connection, count: int, requests: list[asyncio.Future[Any]]) -> None:
    """Until `count` server statements wait for a lock (the session's cluster is this test run's own)."""
    deadline = time.monotonic() + GATE_TIMEOUT
    while (waiting := await db.fetchval(WAITING)) < count:
        assert not any(request.done() for request in requests), "a request finished while it should wait"
        assert time.monotonic() < deadline, f"only {waiting} of {count} statements wait for a lock"
        await asyncio.sleep(0.01)


async def first_in_flight_then_retried(
    database_url: str, lock: str, lock_args: tuple[Any, ...], send: Callable[[], Awaitable[httpx.Response]]
) -> tuple[httpx.Response, httpx.Response]:
    """`send()` twice, provably overlapping: the first request has claimed its key and waits to write behind a row
    lock this test holds; the second arrives while the first is in flight and waits for the first's key; then the
    lock is let go (a rollback). Returns (first, second)."""
    db = await asyncpg.connect(database_url)
    try:
        gate = db.transaction()
        await gate.start()
        try:
            await db.execute(lock, *lock_args)
            first = asyncio.ensure_future(send())
            await waiting_for_locks(db, 1, [first])
            second = asyncio.ensure_future(send())
            await waiting_for_locks(db, 2, [first, second])
        finally:
            await gate.rollback()
        return await first, await second
    finally:
        await db.close()


def executed_then_replayed(first: httpx.Response, second: httpx.Response, status: int) -> None:
    assert (first.status_code, second.status_code) == (status, status), (first.text, second.text)
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()


async def test_a_retry_while_the_first_update_is_in_flight_waits_and_replays(
    client: httpx.AsyncClient, alpha: TenantSpec, database_url: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket, fields = await a_ticket(agent)
    body = {"etag": ticket["etag"], "ticketUpdate": {fields["counter"]: 7}}
    first, second = await first_in_flight_then_retried(
        database_url,
        LOCK_TICKETS,
        (alpha.id, [uuid.UUID(ticket["id"])]),
        lambda: agent.update(ticket["objectId"], body, **{"Idempotency-Key": "together"}),
    )
    executed_then_replayed(first, second, 200)
    assert first.json() == {**UPDATED, "etag": first.json()["etag"], **named(await by_name(agent, "new"))}
    assert await events(agent, ticket["objectId"]) == ["ticket.created", "ticket.updated"]
    assert (await agent.get(ticket["objectId"])).json()["data"][fields["counter"]] == 7


async def test_a_retry_while_the_first_status_change_is_in_flight_waits_and_replays(
    client: httpx.AsyncClient, alpha: TenantSpec, database_url: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket, _ = await a_ticket(agent)
    body = {"etag": ticket["etag"], "state": "open", "note": "once"}
    first, second = await first_in_flight_then_retried(
        database_url,
        LOCK_TICKETS,
        (alpha.id, [uuid.UUID(ticket["id"])]),
        lambda: agent.change_status(ticket["objectId"], body, **{"Idempotency-Key": "together"}),
    )
    executed_then_replayed(first, second, 200)
    assert first.json() == {**STATUS_CHANGED, "etag": first.json()["etag"], **named(await by_name(agent, "open"))}
    assert await events(agent, ticket["objectId"]) == ["ticket.created", "ticket.status_changed"]


async def test_a_retry_while_the_first_create_is_in_flight_waits_and_replays(
    client: httpx.AsyncClient, alpha: TenantSpec, database_url: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    await a_ticket(agent)  # alpha's REQ display-ID sequence row exists: the lock below holds creates of REQ
    request_type = await agent.ticket_type("REQ")
    data = {field_ids(request_type)["title"]: "Created once"}
    first, second = await first_in_flight_then_retried(
        database_url,
        "SELECT 1 FROM display_id_sequence WHERE tenant_id = $1 AND prefix = 'REQ' FOR UPDATE",
        (alpha.id,),
        lambda: agent.create(request_type["id"], data, **{"Idempotency-Key": "together"}),
    )
    executed_then_replayed(first, second, 201)
    assert first.json()["objectId"] == "REQ-0002"
    listed = await client.get(TICKETS, params={"per_page": 100}, headers=agent.headers)
    assert [t["object_id"] for t in listed.json()["data"]] == ["REQ-0002", "REQ-0001"]
    assert await events(agent, "REQ-0002") == ["ticket.created"]


async def test_keys_belong_to_one_realm_of_the_tenant(client: httpx.AsyncClient, tenant_factory: TenantFactory) -> None:
    tenant = await tenant_factory.fresh("realms", realms=(("main", "ES256"), ("partners", "ES256")))
    main = TenantApi.agent(client, tenant, subject="same-subject")
    partner_realm = tenant.realms[1].name
    partners = TenantApi(
        client, tenant, token(tenant, roles=["agent"], subject="same-subject", realm=partner_realm), partner_realm
    )
    request_type = await main.ticket_type("REQ")
    data = {field_ids(request_type)["title"]: "Same key, same body"}
    first = await main.create(request_type["id"], data, **{"Idempotency-Key": "shared"})
    second = await partners.create(request_type["id"], data, **{"Idempotency-Key": "shared"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["objectId"] != second.json()["objectId"]
    assert "idempotent-replayed" not in second.headers


async def test_keys_expire_and_are_swept(
    tenant_factory: TenantFactory, database_url: str, workspace: Any, alpha: TenantSpec
) -> None:
    settings = make_settings(database_url, workspace, idempotency_key_ttl_seconds=1.0)
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await tenant_factory.known(alpha)
        agent = TenantApi.agent(http, alpha)
        request_type = await agent.ticket_type("REQ")
        data = {field_ids(request_type)["title"]: "Once a second"}
        first = await agent.create(request_type["id"], data, **{"Idempotency-Key": "expiring"})
        replay = await agent.create(request_type["id"], data, **{"Idempotency-Key": "expiring"})
        assert replay.json()["objectId"] == first.json()["objectId"]
        await asyncio.sleep(1.2)
        # Expired: the key is unused again, and the request is a new ticket.
        later = await agent.create(request_type["id"], data, **{"Idempotency-Key": "expiring"})
        assert later.status_code == 201
        assert later.json()["objectId"] != first.json()["objectId"]
        assert "idempotent-replayed" not in later.headers
    db = Database(database_url, min_size=1, max_size=1)
    await db.open()
    try:
        count = "SELECT count(*) FROM idempotency_key WHERE tenant_id = $1"
        assert await db.fetch_value(count, alpha.id) == 1
        await asyncio.sleep(1.1)
        sweep = ExpiredIdempotencyKeySweep(IdempotencyRepository(db), datetime.timedelta(seconds=1), 60)
        assert await sweep.sweep() >= 1
        assert await db.fetch_value(count, alpha.id) == 0
    finally:
        await db.close()


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    return [plan, *(node for child in plan.get("Plans", []) for node in nodes(child))]


async def test_the_sweep_reads_expired_keys_through_their_index(alpha: TenantSpec, database_url: str) -> None:
    db = await asyncpg.connect(database_url)
    try:
        async with db.transaction():
            # Enough keys (fresh ones, none expired) that reading them all would cost the planner something.
            await db.execute(
                "INSERT INTO idempotency_key (tenant_id, scope_digest, request_hash) "
                "SELECT $1, sha256(convert_to(n::text, 'UTF8')), 'x' FROM generate_series(1, 20000) AS n",
                alpha.id,
            )
            await db.execute("ANALYZE idempotency_key")
            expired_before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
            [explained] = json.loads(
                await db.fetchval(f"EXPLAIN (FORMAT JSON) {DELETE_EXPIRED}", alpha.id, expired_before)
            )
            [delete, scan] = nodes(explained["Plan"])
            assert (delete["Node Type"], delete["Operation"]) == ("ModifyTable", "Delete")
            assert (scan["Node Type"], scan["Index Name"]) == ("Index Scan", "idempotency_key_created_idx"), scan
            assert scan["Index Cond"].startswith(f"((tenant_id = '{alpha.id}'::uuid) AND (created_at < "), scan
            raise Rollback
    except Rollback:
        pass
    finally:
        await db.close()


class Rollback(Exception):
    """Leaves the test's transaction without a trace (its rows and its statistics)."""


@pytest.mark.parametrize(
    "key",
    [b"", b"x" * 256, b"x" * 10_240, b"tab\there", "caf\u00e9".encode()],
    ids=["empty", "too-long", "10-kb", "control-character", "not-ascii"],
)
async def test_a_malformed_key_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec, key: bytes
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket, fields = await a_ticket(agent)
    body = {"etag": ticket["etag"], "ticketUpdate": {fields["counter"]: 1}}
    headers = [(name.encode(), value.encode()) for name, value in agent.headers.items()]
    response = await client.patch(
        f"{TICKETS}/{ticket['objectId']}/update",
        params=CATALOG,
        json=body,
        headers=[*headers, (b"idempotency-key", key)],
    )
    assert response.status_code == 400, response.text
    assert response.json() == invalid(
        "Invalid request headers", {"Idempotency-Key": "1 to 255 printable ASCII characters"}
    )
    assert (await agent.get(ticket["objectId"])).json()["etag"] == ticket["etag"]
    assert await events(agent, ticket["objectId"]) == ["ticket.created"]


def incompressible(length: int) -> str:
    """Printable ASCII that PostgreSQL cannot compress under its index row limit (about 2.7 kB)."""
    alphabet = string.ascii_letters + string.digits + string.punctuation
    return "".join(secrets.choice(alphabet) for _ in range(length))


async def test_a_long_subject_and_a_long_key_are_kept_and_replayed(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    """The key's scope (realm, subject, key) is stored as a fixed-size digest: the longest subject and the longest
    key fit the index."""
    subject = incompressible(LONGEST_SUBJECT)
    caller = TenantApi(client, alpha, token(alpha, roles=["agent"], subject=subject))
    assert len(caller.bearer) <= MAX_TOKEN_LENGTH
    key = incompressible(255)
    request_type = await caller.ticket_type("REQ")
    data = {field_ids(request_type)["title"]: "A long subject"}
    first = await caller.create(request_type["id"], data, **{"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    again = await caller.create(request_type["id"], data, **{"Idempotency-Key": key})
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (201, first.json(), "true")
    shown = await caller.get(first.json()["objectId"])
    assert shown.json()["created_by"] == subject
    # The same key from another subject is another key.
    other = await TenantApi.agent(client, alpha).create(request_type["id"], data, **{"Idempotency-Key": key})
    assert other.status_code == 201 and other.json()["objectId"] != first.json()["objectId"]


@pytest.mark.parametrize("length", [LONGEST_SUBJECT + 1, 10_240])
async def test_a_subject_longer_than_openid_allows_is_401(
    client: httpx.AsyncClient, alpha: TenantSpec, length: int
) -> None:
    caller = TenantApi(client, alpha, token(alpha, roles=["agent"], subject=incompressible(length)))
    request_type = await TenantApi.agent(client, alpha).ticket_type("REQ")
    data = {field_ids(request_type)["title"]: "Never created"}
    response = await caller.create(request_type["id"], data, **{"Idempotency-Key": "long-subject"})
    assert (response.status_code, response.json()) == (401, INVALID_TOKEN)


async def replayed_twice(
    api: TenantApi, method: str, url: str, body: dict[str, Any] | None, key: str
) -> tuple[httpx.Response, httpx.Response]:
    """The same request sent twice under one key: the first answer, and the retry's."""
    headers = {**api.headers, "Idempotency-Key": key}
    first = await api.http.request(method, url, json=body, headers=headers)
    again = await api.http.request(method, url, json=body, headers=headers)
    assert "idempotent-replayed" not in first.headers
    assert again.headers.get("idempotent-replayed") == "true"
    assert (again.status_code, again.content) == (first.status_code, first.content)
    return first, again


async def test_ticket_state_writes_replay_and_write_once(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    created, _ = await replayed_twice(admin, "POST", STATES, {"name": "Waiting", "state_type": "open"}, "state-1")
    assert created.status_code == 201, created.text
    assert [state["name"] for state in await list_states(admin)].count("Waiting") == 1
    state_url = f"{STATES}/{created.json()['id']}"
    changed, _ = await replayed_twice(admin, "PUT", state_url, {"note": "Waiting for the customer"}, "state-2")
    assert (changed.status_code, changed.json()["note"]) == (200, "Waiting for the customer")
    # The retry of a delete is the delete's answer (204), not "not found" for the state it removed.
    deleted, _ = await replayed_twice(admin, "DELETE", state_url, None, "state-3")
    assert deleted.status_code == 204
    other = await client.post(
        STATES, json={"name": "Other", "state_type": "open"}, headers={**admin.headers, "Idempotency-Key": "state-1"}
    )
    assert (other.status_code, other.json()) == (422, KEY_REUSED)


async def test_ticket_type_writes_replay_and_write_once(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    definition = new_definition()
    created, _ = await replayed_twice(admin, "POST", TYPES, definition, "type-1")
    assert created.status_code == 201, created.text
    assert [t["prefix"] for t in await admin.ticket_types()].count(definition["prefix"]) == 1
    type_url = f"{TYPES}/{created.json()['id']}"
    replaced, _ = await replayed_twice(admin, "PUT", type_url, {**definition, "name": "Probe 2"}, "type-2")
    assert (replaced.status_code, replaced.json()["version"]) == (200, 2)
    archived, _ = await replayed_twice(admin, "DELETE", type_url, None, "type-3")
    assert archived.status_code == 200
    shown = await client.get(type_url, headers=admin.headers)
    assert shown.json()["version"] == 2  # the retried PUT made no third version
    reused = await client.put(
        type_url, json={**definition, "name": "Probe 3"}, headers={**admin.headers, "Idempotency-Key": "type-2"}
    )
    assert (reused.status_code, reused.json()) == (422, KEY_REUSED)
