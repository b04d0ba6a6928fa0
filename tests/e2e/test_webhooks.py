"""Webhooks end to end: the real service (its delivery worker running as in production) and a real receiver on
loopback; every signature is checked with `standardwebhooks`, a third-party verifier."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.bootstrap import apply_tenants
from app.db.database import Database
from app.ticket.repository import TicketRepository
from app.webhook.service import DeclaredWebhookError
from app.webhook.signing import new_secret
from tests.receiver import Answer, Receiver
from tests.support import (
    API,
    ETAG_MISMATCH,
    ME,
    USERS,
    TenantApi,
    TenantFactory,
    TenantSpec,
    field_ids,
    load_tenant_files,
    make_settings,
    new_ticket,
    token,
    upload,
)

WEBHOOKS = f"{API}/webhook"
# What the tests that count deliveries subscribe to: a first call of a new caller adds a user (user.created).
TICKET_EVENTS = ["ticket.created", "ticket.updated"]


@pytest.fixture
def receiver() -> Any:
    with Receiver() as running:
        yield running


@pytest.fixture
async def db(migrated: str) -> Any:
    pool = await asyncpg.create_pool(migrated, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def subscribe(admin: TenantApi, url: str, **members: Any) -> dict[str, Any]:
    response = await admin.http.post(WEBHOOKS, headers=admin.headers, json={"url": url, **members})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["secret"].startswith("whsec_")
    return created


async def deliveries(admin: TenantApi, webhook_id: str) -> list[dict[str, Any]]:
    response = await admin.http.get(
        f"{WEBHOOKS}/{webhook_id}/deliveries", params={"per_page": "100"}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def settled(admin: TenantApi, webhook_id: str, count: int, within: float = 20.0) -> list[dict[str, Any]]:
    """The subscription's deliveries once `count` exist and none is pending any more."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await deliveries(admin, webhook_id)
        if len(found) >= count and all(d["status"] != "pending" for d in found):
            return found
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)


async def current_etag(api: TenantApi, object_id: str) -> str:
    response = await api.get(object_id)
    assert response.status_code == 200, response.text
    return str(response.json()["etag"])


def ticket_events(requests: list[Any], ticket_id: str) -> list[tuple[str, int]]:
    return [
        (r.json["event"], r.json["data"]["ticket"]["sequence"])
        for r in requests
        if r.json["data"].get("ticket", {}).get("id") == ticket_id
    ]


async def users_dispatched(db: asyncpg.Pool, tenant: TenantSpec, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    query = "SELECT count(*) FROM user_event WHERE tenant_id = $1 AND dispatched_at IS NULL"
    while await db.fetchval(query, tenant.id):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def test_every_event_type_arrives_signed_and_matches_the_change(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver, db: asyncpg.Pool
) -> None:
    admin = TenantApi.admin(client, alpha)
    # Seed 004's updated_by names the actor: its name and email come from the users directory, where this agent's
    # first call (its token's name and email claims) put it.
    agent = TenantApi(client, alpha, token(alpha, roles=["agent"], name="Support Agent", email="agent@example.com"))
    actor = {"id": "agent-1", "name": "Support Agent", "email": "agent@example.com"}
    # Its callers known (and their user.created, if they are new, dispatched) before the subscription exists.
    for caller in (admin, agent):
        assert (await client.get(ME, headers=caller.headers)).status_code == 200
    await users_dispatched(db, alpha)
    subscription = await subscribe(admin, receiver.url, description="everything")
    shown = await client.get(f"{WEBHOOKS}/{subscription['id']}", headers=admin.headers)
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert shown.json()["events"] == "all" and shown.json()["active"] is True
    request_type = await agent.ticket_type("REQ")
    fields = field_ids(request_type)

    created = await new_ticket(agent, request_type["id"], {fields["title"]: "Printer jammed"})
    object_id, ticket_id = created["objectId"], created["id"]
    updated = await agent.update(
        object_id, {"etag": created["etag"], "ticketUpdate": {fields["description"]: "<p>x</p>"}}
    )
    assert updated.status_code == 200, updated.text
    moved = await agent.change_status(object_id, {"etag": updated.json()["etag"], "state": "open", "note": "on it"})
    assert moved.status_code == 200, moved.text
    assigned = await agent.assign(object_id, {"etag": moved.json()["etag"], "assignee": "agent-7"})
    assert assigned.status_code == 200, assigned.text
    commented = await agent.comment(object_id, {"content": "<p>Looking</p>"})
    assert commented.status_code == 201, commented.text
    attached = await upload(agent, object_id, "log.txt", b"printer log\n", "text/plain")
    assert attached.status_code == 201, attached.text
    removed = await client.delete(attached.json()["url"], headers=agent.headers)
    assert removed.status_code == 204, removed.text
    deleted = await admin.delete(object_id)
    assert deleted.status_code == 204, deleted.text

    arrived = await receiver.wait_for(8)
    bodies = [request.verified(subscription["secret"]) for request in arrived]
    assert [(b["event"], b["data"]["ticket"]["sequence"]) for b in bodies] == [
        ("ticket.created", 1),
        ("ticket.updated", 2),
        ("ticket.status_changed", 3),
        ("ticket.assigned", 4),
        ("comment.created", 5),
        ("attachment.created", 6),
        ("attachment.deleted", 7),
        ("ticket.deleted", 8),
    ]
    assert len({request.webhook_id for request in arrived}) == 8
    assert all(request.webhook_id.startswith("evt_") for request in arrived)
    first, update, status, assign, comment, attachment_added, attachment_removed, deletion = bodies
    file = attached.json()
    expected_file = {
        "id": file["id"],
        "filename": "log.txt",
        "size": len(b"printer log\n"),
        "mime_type": "text/plain",
        "sha256": file["sha256"],
        "is_internal": False,
        "author": actor,
    }
    assert attachment_added["data"]["attachment"] == attachment_removed["data"]["attachment"] == expected_file
    for body in bodies:
        assert body["data"]["ticket"]["id"] == ticket_id and body["data"]["ticket"]["object_id"] == object_id
        assert body["data"]["ticket"]["title"] == "Printer jammed"
        assert body["timestamp"].endswith("Z")
    assert first["data"]["ticket"]["changes"][fields["title"]] == {"previous": None, "current": "Printer jammed"}
    # `status` in seed 004's values (the default mapping: state "new" shows as "open", "open" as "in_progress"),
    # `state` in the tenant's state names.
    assert first["data"]["ticket"]["status"] == {"previous": None, "current": "open"}
    assert first["data"]["ticket"]["state"] == {"previous": None, "current": "new"}
    assert [body["data"]["ticket"]["updated_by"] for body in bodies] == [actor] * 7 + [
        {"id": "admin-1", "name": None, "email": None}  # a user whose token carried neither claim
    ]
    assert deletion["data"]["ticket"]["status"] == {"previous": "in_progress", "current": "in_progress"}
    assert deletion["data"]["ticket"]["state"] == {"previous": "open", "current": "open"}
    assert update["data"]["ticket"]["changed_fields"] == [fields["description"]]
    assert update["data"]["ticket"]["changes"] == {fields["description"]: {"previous": None, "current": "<p>x</p>"}}
    assert status["data"]["ticket"]["status"] == {"previous": "open", "current": "in_progress"}
    assert status["data"]["ticket"]["state"] == {"previous": "new", "current": "open"}
    assert status["data"]["ticket"]["state_id"] == {
        "previous": first["data"]["ticket"]["state_id"]["current"],
        "current": deletion["data"]["ticket"]["state_id"]["current"],
    }
    assert status["data"]["ticket"]["note"] == "on it"
    assert assign["data"]["ticket"]["assignee"] == {"previous": None, "current": "agent-7"}
    assert comment["data"]["comment"] == {
        "id": commented.json()["id"],
        "content": "<p>Looking</p>",
        "is_internal": False,
        "author": actor,
    }
    logged = await settled(admin, subscription["id"], 8)
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in logged} == {("delivered", 1, 200)}


async def test_bodies_show_the_status_by_the_tenant_files_mapping_and_follow_its_changes(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, receiver: Receiver
) -> None:
    tenant = tenant_factory.spec("hooked-statuses")
    directory = tenant_factory.workspace / "hooked-statuses" / tenant.slug
    directory.mkdir(parents=True)
    settings = make_settings(tenant_factory.database_url, tenant_factory.workspace)

    async def apply(extra: str) -> None:
        (directory / f"{tenant.slug}.toml").write_text(tenant.toml() + extra)
        configs = load_tenant_files(directory, settings.data_dir)
        await apply_tenants(tenant_factory.database_url, configs, disable_missing=False, settings=settings)
        await tenant_factory.known(tenant)

    # "open" shows as resolved; "pending close" is left unmapped, so it shows its own name.
    await apply('[v1.platform]\nstatuses = { in_progress = ["pending reminder"], resolved = ["open"] }\n')
    admin = TenantApi.admin(client, tenant)
    subscription = await subscribe(admin, receiver.url, events=["ticket.status_changed"])
    request_type = await admin.ticket_type("REQ")
    created = await new_ticket(admin, request_type["id"], {field_ids(request_type)["title"]: "Mapped"})
    etag = created["etag"]

    async def move(state: str) -> None:
        nonlocal etag
        body = {"etag": etag, "state": state}
        if state.startswith("pending"):
            body["pendingUntil"] = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).isoformat()
        moved = await admin.change_status(created["objectId"], body)
        assert moved.status_code == 200, moved.text
        etag = moved.json()["etag"]

    await move("open")
    await move("pending close")
    await receiver.wait_for(2)  # dispatched (bodies are made then) under the file's mapping
    # The file's mapping removed: the next body shows seed 004's defaults at once.
    await apply("")
    await move("pending reminder")
    arrived = await receiver.wait_for(3)
    shown = [
        (body["data"]["ticket"]["status"], body["data"]["ticket"]["state"])
        for body in (request.verified(subscription["secret"]) for request in arrived)
    ]
    assert shown == [
        ({"previous": "open", "current": "resolved"}, {"previous": "new", "current": "open"}),
        ({"previous": "resolved", "current": "pending close"}, {"previous": "open", "current": "pending close"}),
        (
            {"previous": "resolved", "current": "in_progress"},
            {"previous": "pending close", "current": "pending reminder"},
        ),
    ]


async def test_user_created_arrives_for_an_added_user_and_for_a_first_call(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, receiver: Receiver, db: asyncpg.Pool
) -> None:
    tenant = await tenant_factory.fresh("hooked-users", builtin_realm=True)
    admin = TenantApi.admin(client, tenant)
    # The admin's own first call is a user.created too: dispatched (to no subscription) before there is one.
    assert (await client.get(ME, headers=admin.headers)).status_code == 200
    await users_dispatched(db, tenant)
    subscription = await subscribe(admin, receiver.url, events=["user.created"])
    added = await client.post(
        USERS,
        headers=admin.headers,
        json={"email": "Nia@Example.com", "name": "Nia Noor", "password": "correct horse battery", "role": "agent"},
    )
    assert added.status_code == 201, added.text
    customer_roles = list(tenant.roles["customer"])
    newcomer = TenantApi(client, tenant, token(tenant, roles=customer_roles, subject="kc-newcomer", name="Kim Neu"))
    assert (await client.get(ME, headers=newcomer.headers)).status_code == 200
    # A known caller adds nothing.
    assert (await client.get(ME, headers=newcomer.headers)).status_code == 200

    arrived = await receiver.wait_for(2)
    await asyncio.sleep(0.5)  # nothing else follows
    assert len(receiver.received()) == 2
    bodies = [request.verified(subscription["secret"]) for request in arrived]
    assert all(body["event"] == "user.created" and body["timestamp"].endswith("Z") for body in bodies)
    assert len({request.webhook_id for request in arrived}) == 2
    users = {body["data"]["user"]["subject"]: body["data"]["user"] for body in bodies}
    user = added.json()
    assert users[user["subject"]] == {
        "id": user["id"],
        "subject": user["subject"],
        "realm": user["realm"],
        "name": "Nia Noor",
        "email": "Nia@Example.com",
        "role": "agent",
        "status": "active",
        "created_at": user["created_at"],
        "created_by": {"id": "admin-1", "name": None, "email": None},
    }
    directory = (await client.get(USERS, params={"role": "customer"}, headers=admin.headers)).json()["data"]
    [shown] = [entry for entry in directory if entry["subject"] == "kc-newcomer"]
    assert users["kc-newcomer"] == {
        "id": shown["id"],
        "subject": "kc-newcomer",
        "realm": shown["realm"],
        "name": "Kim Neu",
        "email": None,
        "role": "customer",
        "status": "active",
        "created_at": shown["created_at"],
        "created_by": {"id": "kc-newcomer", "name": "Kim Neu", "email": None},
    }
    logged = await settled(admin, subscription["id"], 2)
    assert {(d["event"], d["ticket_id"], d["sequence"], d["status"]) for d in logged} == {
        ("user.created", None, None, "delivered")
    }


async def test_an_actor_is_named_only_by_the_one_user_with_its_subject(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, receiver: Receiver, db: asyncpg.Pool
) -> None:
    tenant = await tenant_factory.fresh("named-actors", realms=(("main", "ES256"), ("partner", "ES256")))
    admin = TenantApi.admin(client, tenant)
    partner = tenant.realms[1].name
    ada = token(tenant, roles=["agent"], subject="ada", name="Ada", email="ada@example.com")
    named = TenantApi(client, tenant, ada)
    # One subject in two realms: two users, so the subject alone does not say which one acted.
    twice = TenantApi(client, tenant, token(tenant, roles=["agent"], subject="bo", name="Bo", email="bo@example.com"))
    elsewhere = TenantApi(
        client, tenant, token(tenant, realm=partner, roles=["agent"], subject="bo", name="Other Bo"), realm=partner
    )
    # A service account is a client, not a person: not in the directory, whatever its token's claims.
    service = token(tenant, roles=["agent"], subject="service-account-sync", client_id="sync", name="Sync Bot")
    robot = TenantApi(client, tenant, service)
    for caller in (admin, named, twice, elsewhere, robot):
        assert (await client.get(ME, headers=caller.headers)).status_code == 200
    await users_dispatched(db, tenant)
    subscription = await subscribe(admin, receiver.url, events=["ticket.created", "attachment.deleted"])
    request_type = await named.ticket_type("REQ")
    title = field_ids(request_type)["title"]
    by_ada = await new_ticket(named, request_type["id"], {title: "By Ada"})
    await new_ticket(twice, request_type["id"], {title: "By Bo"})
    await new_ticket(robot, request_type["id"], {title: "By a service"})
    # The admin removes Ada's file: the event's actor is the admin, the file's author still Ada.
    attached = await upload(named, by_ada["objectId"], "notes.txt", b"notes\n", "text/plain")
    assert attached.status_code == 201, attached.text
    assert (await client.delete(attached.json()["url"], headers=admin.headers)).status_code == 204

    arrived = await receiver.wait_for(4)
    bodies = [request.verified(subscription["secret"]) for request in arrived]
    created = {
        b["data"]["ticket"]["title"]: b["data"]["ticket"]["updated_by"] for b in bodies if "attachment" not in b["data"]
    }
    assert created == {
        "By Ada": {"id": "ada", "name": "Ada", "email": "ada@example.com"},
        "By Bo": {"id": "bo", "name": None, "email": None},
        "By a service": {"id": "service-account-sync", "name": None, "email": None},
    }
    [removal] = [body for body in bodies if body["event"] == "attachment.deleted"]
    assert removal["data"]["ticket"]["updated_by"] == {"id": "admin-1", "name": None, "email": None}
    assert removal["data"]["attachment"]["author"] == {"id": "ada", "name": "Ada", "email": "ada@example.com"}


async def test_a_refused_or_rolled_back_write_produces_no_event(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver, migrated: str
) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=["ticket.created", "ticket.updated"])
    request_type = await agent.ticket_type("REQ")
    fields = field_ids(request_type)
    created = await new_ticket(agent, request_type["id"], {fields["title"]: "Refusals"})
    object_id = created["objectId"]
    fresh = await agent.update(object_id, {"etag": created["etag"], "ticketUpdate": {fields["counter"]: 1}})
    assert fresh.status_code == 200, fresh.text
    stale = await agent.update(object_id, {"etag": created["etag"], "ticketUpdate": {fields["counter"]: 2}})
    assert (stale.status_code, stale.json()) == (400, ETAG_MISMATCH)
    bad_value = await agent.update(object_id, {"etag": fresh.json()["etag"], "ticketUpdate": {fields["counter"]: "x"}})
    assert bad_value.status_code == 400, bad_value.text
    # The same statement the service runs, in a transaction that is rolled back.
    db = Database(migrated, min_size=1, max_size=1)
    await db.open()
    try:
        with pytest.raises(RuntimeError, match="roll back"):
            async with db.transaction():
                changed = await TicketRepository(db).compare_and_swap(
                    alpha.id,
                    object_id,
                    uuid.UUID(fresh.json()["etag"]),
                    uuid.uuid4(),
                    f'{{"{fields["counter"]}": 3}}',
                    "agent-1",
                    request_type["version"],
                    "rolled-back",
                    False,
                )
                assert changed is not None
                raise RuntimeError("roll back")
    finally:
        await db.close()
    last = await agent.update(object_id, {"etag": fresh.json()["etag"], "ticketUpdate": {fields["counter"]: 4}})
    assert last.status_code == 200, last.text

    logged = await settled(admin, subscription["id"], 3)
    arrived = receiver.delivered()
    assert ticket_events(arrived, created["id"]) == [
        ("ticket.created", 1),
        ("ticket.updated", 2),
        ("ticket.updated", 3),
    ]
    assert [r.verified(subscription["secret"])["data"]["ticket"]["changes"] for r in arrived[1:]] == [
        {fields["counter"]: {"previous": 0, "current": 1}},
        {fields["counter"]: {"previous": 1, "current": 4}},
    ]
    assert len(logged) == 3


async def test_a_receiver_that_is_down_for_a_while_gets_every_event_in_order(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver
) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=TICKET_EVENTS)
    receiver.default = Answer(500, body=b"x" * 5000)
    request_type = await agent.ticket_type("REQ")
    fields = field_ids(request_type)
    tickets = [await new_ticket(agent, request_type["id"], {fields["title"]: f"Down {n}"}) for n in range(2)]
    await receiver.wait_for(3, successful=False)
    receiver.stop()  # connections refused for a while
    for ticket in tickets:
        etag = ticket["etag"]
        for value in (1, 2):
            response = await agent.update(
                ticket["objectId"], {"etag": etag, "ticketUpdate": {fields["counter"]: value}}
            )
            assert response.status_code == 200, response.text
            etag = response.json()["etag"]
    await asyncio.sleep(0.5)
    receiver.default = Answer(200)
    receiver.answer(Answer(429, headers=(("Retry-After", "1"),)))
    receiver.start()

    logged = await settled(admin, subscription["id"], 6)
    arrived = receiver.delivered()
    for ticket in tickets:
        per_ticket = ticket_events(arrived, ticket["id"])
        assert [sequence for _, sequence in per_ticket] == [1, 2, 3], per_ticket
    assert all(d["status"] == "delivered" and d["last_status_code"] == 200 for d in logged)
    # At least once, and no more: each event was accepted once, and every request that arrived is an attempt the
    # log counts (the others were refused connections).
    received = receiver.received()
    assert sorted(r.webhook_id for r in arrived) == sorted(d["webhook_id"] for d in logged)
    assert len(received) <= sum(d["attempts"] for d in logged)
    assert sum(d["attempts"] for d in logged) > len(logged)
    after_429 = [r for r in received if r.status == 429]
    assert len(after_429) == 1, [(r.status, r.webhook_id) for r in received]
    retried = [r for r in received if r.webhook_id == after_429[0].webhook_id and r.at > after_429[0].at]
    assert retried and retried[0].at - after_429[0].at >= 0.95  # Retry-After honoured
    for request in received:
        request.verified(subscription["secret"])


async def test_secret_rotation_signs_with_both_secrets_during_the_overlap(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver
) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=TICKET_EVENTS)
    rotated = await client.post(f"{WEBHOOKS}/{subscription['id']}/rotate", headers=admin.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != subscription["secret"] and new_secret.startswith("whsec_")
    assert rotated.json()["previous_secret_valid_until"] is not None
    request_type = await agent.ticket_type("REQ")
    await new_ticket(agent, request_type["id"], {field_ids(request_type)["title"]: "Rotation"})

    [request] = await receiver.wait_for(1)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    for secret in (subscription["secret"], new_secret):
        request.verified(secret)
        # Each signature verifies with exactly one of the two secrets.
        alone = [s for s in signatures if _verifies(secret, request.body, {**request.headers, "webhook-signature": s})]
        assert len(alone) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


async def test_unsafe_urls_are_refused_at_creation(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    for url, reason in {
        "http://169.254.169.254/latest/meta-data": "169.254.169.254 is a link-local address",
        "https://169.254.169.254/": "169.254.169.254 is a link-local address",
        "https://10.0.0.5/hook": "10.0.0.5 is a private address",
        "https://192.168.1.1/hook": "192.168.1.1 is a private address",
        "https://[::ffff:10.1.2.3]/hook": "10.1.2.3 is a private address",
        "https://100.64.0.1/hook": "100.64.0.1 is not a public address",
        "http://8.8.8.8/hook": "must be an https URL",
        "ftp://127.0.0.1/": "must be an https URL",
        "https://user:pw@127.0.0.1/": "must not contain credentials",
    }.items():
        response = await client.post(WEBHOOKS, headers=admin.headers, json={"url": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["code"] == "INPUT_VALIDATION_FAILURE"
        assert reason in response.json()["validationResult"]["reason"]["url"], (url, response.text)
    listed = await client.get(WEBHOOKS, headers=admin.headers)
    assert listed.json() == {"data": []}


async def test_unsafe_addresses_are_refused_again_at_delivery(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    """A subscription whose URL became unsafe after it was saved (its name now resolves elsewhere, or it was written
    around the API) is refused on every attempt, before anything is sent."""
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    unsafe = {
        "https://169.254.169.254/latest": "link-local",
        "http://8.8.8.8/hook": "8.8.8.8 is not a loopback address",
    }
    ids = {}
    for url in unsafe:
        ids[url] = uuid.uuid4()
        await db.execute(
            "INSERT INTO webhook_subscription (tenant_id, id, url, active, secret, created_at, created_by, updated_at,"
            " updated_by) VALUES ($1, $2, $3, true, $4, now(), 'test', now(), 'test')",
            alpha.id,
            ids[url],
            url,
            "whsec_" + "A" * 43 + "=",
        )
    request_type = await agent.ticket_type("REQ")
    await new_ticket(agent, request_type["id"], {field_ids(request_type)["title"]: "SSRF"})
    for url, reason in unsafe.items():
        deadline = asyncio.get_running_loop().time() + 10
        while not (logged := await deliveries(admin, str(ids[url]))) or logged[0]["attempts"] < 2:
            assert asyncio.get_running_loop().time() < deadline, logged
            await asyncio.sleep(0.05)
        assert logged[0]["status"] == "pending" and logged[0]["last_status_code"] is None
        assert logged[0]["last_error"].startswith("ConnectError: refused:"), logged[0]
        assert reason in logged[0]["last_error"]
    # Switched off, so they stop retrying for the rest of the session.
    await db.execute("UPDATE webhook_subscription SET active = false WHERE tenant_id = $1", alpha.id)


async def test_a_replay_left_waiting_behind_an_attempt_that_ended_unseen_is_looked_at_again(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver, db: asyncpg.Pool
) -> None:
    admin = TenantApi.admin(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=TICKET_EVENTS)
    request_type = await admin.ticket_type("REQ")
    fields = field_ids(request_type)
    ticket = await new_ticket(admin, request_type["id"], {fields["title"]: "Unseen"})
    await receiver.wait_for(1)
    receiver.gate.clear()  # the next attempt stays in flight
    updated = await admin.update(ticket["objectId"], {"etag": ticket["etag"], "ticketUpdate": {fields["counter"]: 1}})
    assert updated.status_code == 200, updated.text
    await receiver.wait_for(2, successful=False)
    try:
        replayed = await client.post(
            f"{WEBHOOKS}/{subscription['id']}/replay",
            headers=admin.headers,
            json={"ticket": ticket["objectId"], "from_sequence": 2},
        )
        assert replayed.status_code == 202, replayed.text
        # The attempt in flight ends in a statement that did not see the replay (as one under way as the replay
        # committed): nothing ends the replayed delivery's wait but the route's second look (the workers' sweep
        # would, minutes later).
        ended = await db.execute(
            "UPDATE webhook_delivery SET status = 'delivered', leased_until = NULL, delivered_at = now() "
            "WHERE subscription_id = $1 AND message_id = 'evt_' || $2 AND leased_until IS NOT NULL",
            uuid.UUID(subscription["id"]),
            str(await db.fetchval("SELECT id FROM ticket_event WHERE ticket_id = $1 AND sequence = 2", ticket["id"])),
        )
        assert ended == "UPDATE 1"
        again = (await receiver.wait_for(3, successful=False, within=10.0))[2]
        assert again.webhook_id == replayed.json()["webhook_ids"][0]
    finally:
        receiver.gate.set()
    logged = await settled(admin, subscription["id"], 3)
    assert sorted((d["sequence"], d["status"]) for d in logged) == [
        (1, "delivered"),
        (2, "delivered"),
        (2, "delivered"),
    ]


async def test_a_retry_left_waiting_behind_an_attempt_that_ended_unseen_is_looked_at_again(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver, db: asyncpg.Pool
) -> None:
    admin = TenantApi.admin(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=TICKET_EVENTS)
    path = f"{WEBHOOKS}/{subscription['id']}"
    request_type = await admin.ticket_type("REQ")
    fields = field_ids(request_type)
    ticket = await new_ticket(admin, request_type["id"], {fields["title"]: "Unseen retry"})
    # Delivered before the next event commits: dispatched alone, the update's delivery never waits, so no look the
    # dispatcher scheduled for it can free it below.
    await receiver.wait_for(1)
    updated = await admin.update(ticket["objectId"], {"etag": ticket["etag"], "ticketUpdate": {fields["counter"]: 1}})
    assert updated.status_code == 200, updated.text
    [second, first] = await settled(admin, subscription["id"], 2)  # newest first
    receiver.gate.clear()
    try:
        # The first event replayed and held in flight; the second, delivered, retried behind it: it waits.
        replayed = await client.post(
            f"{path}/replay",
            headers=admin.headers,
            json={"ticket": ticket["objectId"], "from_sequence": 1, "to_sequence": 1},
        )
        assert replayed.status_code == 202, replayed.text
        await receiver.wait_for(3, successful=False)
        retried = await client.post(f"{path}/deliveries/{second['id']}/retry", headers=admin.headers)
        assert retried.status_code == 202, retried.text
        assert (retried.json()["status"], retried.json()["next_attempt_at"]) == ("pending", None)
        ended = await db.execute(
            "UPDATE webhook_delivery SET status = 'delivered', leased_until = NULL, delivered_at = now() "
            "WHERE subscription_id = $1 AND leased_until IS NOT NULL",
            uuid.UUID(subscription["id"]),
        )
        assert ended == "UPDATE 1"
        again = (await receiver.wait_for(4, successful=False, within=10.0))[3]
        assert again.webhook_id == second["webhook_id"] != first["webhook_id"]
    finally:
        receiver.gate.set()


async def test_replay_resends_exactly_the_requested_range_in_order(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver
) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=TICKET_EVENTS)
    request_type = await agent.ticket_type("REQ")
    fields = field_ids(request_type)
    ticket = await new_ticket(agent, request_type["id"], {fields["title"]: "Replay"})
    etag = ticket["etag"]
    for value in range(1, 5):
        response = await agent.update(ticket["objectId"], {"etag": etag, "ticketUpdate": {fields["counter"]: value}})
        etag = response.json()["etag"]
    original = await receiver.wait_for(5)
    ids = [request.webhook_id for request in original]
    cut = datetime.datetime.fromisoformat(original[3].json["timestamp"].replace("Z", "+00:00"))

    replay = f"{WEBHOOKS}/{subscription['id']}/replay"
    # Whole numbers either way (JSON Schema's integers).
    by_sequence = await client.post(
        replay, headers=admin.headers, json={"ticket": ticket["objectId"], "from_sequence": 2, "to_sequence": 4.0}
    )
    assert by_sequence.status_code == 202, by_sequence.text
    assert by_sequence.json() == {"queued": 3, "webhook_ids": ids[1:4]}
    replayed = (await receiver.wait_for(8))[5:]
    assert [(r.webhook_id, r.verified(subscription["secret"])["data"]["ticket"]["sequence"]) for r in replayed] == [
        (ids[1], 2),
        (ids[2], 3),
        (ids[3], 4),
    ]
    by_time = await client.post(replay, headers=admin.headers, json={"since": cut.isoformat()})
    assert by_time.status_code == 202, by_time.text
    assert by_time.json() == {"queued": 2, "webhook_ids": ids[3:5]}
    assert [r.webhook_id for r in (await receiver.wait_for(10))[8:]] == ids[3:5]

    for body, reason in [
        ({}, "body"),
        ({"ticket": ticket["objectId"]}, "from_sequence"),
        ({"ticket": ticket["objectId"], "from_sequence": 3, "to_sequence": 2}, "to_sequence"),
        ({"since": cut.isoformat(), "from_sequence": 1}, "body"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"ticket": ticket["objectId"], "from_sequence": 2**31}, "from_sequence"),
        ({"ticket": ticket["objectId"], "from_sequence": 1.5}, "from_sequence"),
    ]:
        refused = await client.post(replay, headers=admin.headers, json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert reason in refused.json()["validationResult"]["reason"], (body, refused.text)
    await asyncio.sleep(0.3)
    assert len(receiver.received()) == 10


async def test_dead_letter_retry_auto_disable_and_ping(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver, db: asyncpg.Pool
) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    receiver.default = Answer(500, body=b"y" * 5000)
    subscription = await subscribe(admin, receiver.url, events=["ticket.created"])
    path = f"{WEBHOOKS}/{subscription['id']}"
    request_type = await agent.ticket_type("REQ")
    await new_ticket(agent, request_type["id"], {field_ids(request_type)["title"]: "Dead"})
    await receiver.wait_for(2, successful=False)
    # The retry horizon passes: the next failure dead-letters the delivery.
    await db.execute("UPDATE webhook_delivery SET expires_at = now() WHERE tenant_id = $1", alpha.id)
    [dead] = await settled(admin, subscription["id"], 1)
    assert dead["status"] == "dead" and dead["last_status_code"] == 500 and dead["last_error"] == "HTTP 500"
    assert dead["last_response"] == "y" * 1024 and dead["next_attempt_at"] is None
    assert dead["attempts"] == len(receiver.received()) and dead["last_latency_ms"] >= 0
    # Failing for longer than the threshold: the next failure disables the subscription, saying why.
    await db.execute(
        "UPDATE webhook_subscription SET failing_since = now() - interval '6 days' WHERE id = $1",
        uuid.UUID(subscription["id"]),
    )
    retried = await client.post(f"{path}/deliveries/{dead['id']}/retry", headers=admin.headers)
    assert retried.status_code == 202 and retried.json()["status"] == "pending", retried.text
    deadline = asyncio.get_running_loop().time() + 10
    while (shown := (await client.get(path, headers=admin.headers)).json())["active"]:
        assert asyncio.get_running_loop().time() < deadline, shown
        await asyncio.sleep(0.05)
    assert shown["disabled_reason"].startswith("disabled automatically: every delivery has failed since")
    assert "HTTP 500" in shown["disabled_reason"]

    receiver.default = Answer(200)
    enabled = await client.put(path, headers=admin.headers, json={"active": True})
    assert enabled.status_code == 200 and enabled.json()["disabled_reason"] is None, enabled.text
    ping = await client.post(f"{path}/test", headers=admin.headers)
    assert ping.status_code == 202 and ping.json()["event"] == "webhook.test", ping.text
    # (The retried delivery, due again now that the subscription is on, may arrive first.)
    pinged = await receiver.wait_for_message(ping.json()["webhook_id"])
    assert pinged.verified(subscription["secret"]) == {
        "event": "webhook.test",
        "timestamp": pinged.json["timestamp"],
        "data": {"subscription_id": subscription["id"]},
    }
    again = await client.post(f"{path}/deliveries/{dead['id']}/retry", headers=admin.headers)
    assert again.status_code == 202, again.text
    logged = await settled(admin, subscription["id"], 2)
    assert {d["id"]: d["status"] for d in logged} == {dead["id"]: "delivered", ping.json()["id"]: "delivered"}
    assert (await client.get(path, headers=admin.headers)).json()["failing_since"] is None


async def test_a_success_ends_the_subscriptions_failing_streak(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver
) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=["ticket.created"])
    path = f"{WEBHOOKS}/{subscription['id']}"
    receiver.answer(Answer(503, headers=(("retry-after", "1"),)))  # the first attempt fails, the retry succeeds
    request_type = await agent.ticket_type("REQ")
    await new_ticket(agent, request_type["id"], {field_ids(request_type)["title"]: "Streak"})
    await receiver.wait_for(1, successful=False)
    deadline = asyncio.get_running_loop().time() + 10
    while (await client.get(path, headers=admin.headers)).json()["failing_since"] is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    [delivered] = await receiver.wait_for(1)
    assert delivered.verified(subscription["secret"])["event"] == "ticket.created"
    [logged] = await settled(admin, subscription["id"], 1)
    assert (logged["status"], logged["attempts"]) == ("delivered", 2)
    shown = (await client.get(path, headers=admin.headers)).json()
    assert (shown["failing_since"], shown["active"]) == (None, True)


async def test_editing_a_failing_subscription_keeps_its_streak_and_switching_it_on_ends_it(
    client: httpx.AsyncClient, alpha: TenantSpec, receiver: Receiver, db: asyncpg.Pool
) -> None:
    admin = TenantApi.admin(client, alpha)
    subscription = await subscribe(admin, receiver.url, events=["ticket.created"])
    path = f"{WEBHOOKS}/{subscription['id']}"
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    await db.execute(
        "UPDATE webhook_subscription SET failing_since = $2 WHERE id = $1", uuid.UUID(subscription["id"]), since
    )
    # Edits, "active": true on one that is active included, do not restart the count towards disabling it.
    for change in ({"description": "renamed"}, {"active": True}, {"events": "all"}):
        edited = await client.put(path, headers=admin.headers, json=change)
        assert edited.status_code == 200, edited.text
        assert datetime.datetime.fromisoformat(edited.json()["failing_since"]) == since, change
    # Switched off and on again: it starts afresh.
    assert (await client.put(path, headers=admin.headers, json={"active": False})).json()["failing_since"] is not None
    switched_on = await client.put(path, headers=admin.headers, json={"active": True})
    assert (switched_on.json()["active"], switched_on.json()["failing_since"]) == (True, None)


async def test_a_tenant_file_declares_a_webhook_with_its_secret_from_the_environment(
    client: httpx.AsyncClient,
    tenant_factory: TenantFactory,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    db: asyncpg.Pool,
) -> None:
    tenant = tenant_factory.spec("declaring")
    declaration = (
        f'[[webhooks]]\nname = "crm"\nurl = "{receiver.url}"\nsecret_env = "CRM_WEBHOOK_SECRET"\n'
        'events = ["ticket.created"]\ndescription = "the CRM"\n'
    )
    directory = tenant_factory.workspace / "declaring" / tenant.slug
    directory.mkdir(parents=True)
    (directory / f"{tenant.slug}.toml").write_text(tenant.toml() + declaration)
    settings = make_settings(tenant_factory.database_url, tenant_factory.workspace)

    monkeypatch.delenv("CRM_WEBHOOK_SECRET", raising=False)
    with pytest.raises(DeclaredWebhookError, match="CRM_WEBHOOK_SECRET"):
        await apply_tenants(
            tenant_factory.database_url, load_tenant_files(directory, settings.data_dir), disable_missing=False
        )
    first_secret, second_secret = new_secret(), new_secret()
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", first_secret)
    configs = load_tenant_files(directory, settings.data_dir)
    await apply_tenants(tenant_factory.database_url, configs, disable_missing=False, settings=settings)
    await tenant_factory.known(tenant)
    admin = TenantApi.admin(client, tenant)
    [declared] = (await client.get(WEBHOOKS, headers=admin.headers)).json()["data"]
    assert (declared["url"], declared["events"], declared["declared"]) == (receiver.url, ["ticket.created"], True)
    refused = await client.put(f"{WEBHOOKS}/{declared['id']}", headers=admin.headers, json={"active": False})
    assert (refused.status_code, refused.json()["code"]) == (409, "DECLARED_IN_TENANT_FILE")

    request_type = await admin.ticket_type("REQ")
    await new_ticket(admin, request_type["id"], {field_ids(request_type)["title"]: "Declared"})
    [request] = await receiver.wait_for(1)
    assert request.verified(first_secret)["event"] == "ticket.created"

    # A new secret in the variable is a rotation: both sign during the overlap.
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", second_secret)
    await apply_tenants(tenant_factory.database_url, configs, disable_missing=False, settings=settings)
    await new_ticket(admin, request_type["id"], {field_ids(request_type)["title"]: "Rotated"})
    rotated = (await receiver.wait_for(2))[1]
    assert rotated.verified(first_secret) == rotated.verified(second_secret)
    assert len(rotated.headers["webhook-signature"].split(" ")) == 2

    # Disabled by the service while the file says active: the next sync switches it on again, afresh.
    await db.execute(
        "UPDATE webhook_subscription SET active = false, disabled_reason = 'disabled automatically: test', "
        "failing_since = now() - interval '6 days' WHERE id = $1",
        uuid.UUID(declared["id"]),
    )
    await apply_tenants(tenant_factory.database_url, configs, disable_missing=False, settings=settings)
    shown = (await client.get(f"{WEBHOOKS}/{declared['id']}", headers=admin.headers)).json()
    assert (shown["active"], shown["disabled_reason"], shown["failing_since"]) == (True, None, None)

    # No longer declared: gone.
    (directory / f"{tenant.slug}.toml").write_text(tenant.toml())
    await apply_tenants(
        tenant_factory.database_url,
        load_tenant_files(directory, settings.data_dir),
        disable_missing=False,
        settings=settings,
    )
    assert (await client.get(WEBHOOKS, headers=admin.headers)).json() == {"data": []}
