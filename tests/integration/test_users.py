"""The users directory, built-in sign-in and service-account tokens, against a real server and database.

Users of a builtin realm are added by an admin (POST /users) and sign in at POST /auth/login; users of an external
realm appear on their first call. Tokens the service issues are verified by the same authenticator as any realm's,
and by PyJWT from the published JWKS.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import jwt as pyjwt
import msgspec
import pytest

from app.db.database import Database
from app.idempotency.repository import IdempotencyRepository
from app.tenancy.devkeys import rotate_builtin_key
from app.user.dto import CreateUserRequest
from app.user.passwords import PasswordHasher
from app.user.repository import ClientRepository, LoginFailureRepository, UserRepository
from app.user.signin import Provisioning
from app.user.throttle import QuietLoginFailureSweep
from tests.support import (
    ADMIN_SCOPE,
    INVALID_TOKEN,
    INVITATION,
    LOGIN,
    ME,
    TICKETS,
    USERS,
    WAITING,
    LiveServer,
    TenantApi,
    TenantFactory,
    TenantSpec,
    auth_headers,
    field_ids,
    load_tenant_files,
    make_settings,
    new_ticket,
    ticket_not_found,
    token,
)

PASSWORD = "correct horse battery"
INVALID_CREDENTIALS = {
    "error": True,
    "code": "INVALID_CREDENTIALS",
    "message": "Invalid email or password",
    "status": 401,
}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def gamma(tenant_factory: TenantFactory) -> TenantSpec:
    """A fresh tenant with an external realm (`gamma-main`, alpha's roles) and a builtin realm named after it."""
    return await tenant_factory.fresh("gamma", builtin_realm=True)


def builtin(tenant: TenantSpec) -> str:
    return next(realm.name for realm in tenant.realms if realm.builtin)


def admin_headers(tenant: TenantSpec) -> dict[str, str]:
    return auth_headers(tenant, token(tenant, roles=["admin"], scope=ADMIN_SCOPE, subject="admin-1"))


async def add_user(
    http: httpx.AsyncClient, tenant: TenantSpec, email: str, role: str = "agent", name: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"email": email, "password": PASSWORD, "role": role}
    if name is not None:
        body["name"] = name
    response = await http.post(USERS, json=body, headers=admin_headers(tenant))
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


async def login(http: httpx.AsyncClient, tenant: TenantSpec, email: str, password: str) -> httpx.Response:
    return await http.post(LOGIN, json={"email": email, "password": password}, headers={"x-tenantid": str(tenant.id)})


def as_user(tenant: TenantSpec, bearer: str) -> dict[str, str]:
    return auth_headers(tenant, bearer, realm=builtin(tenant))


# ---------------------------------------------------------------------------------------------------------------
# the directory


async def test_the_directory_filters_and_searches_with_exact_results(
    client: httpx.AsyncClient, gamma: TenantSpec, beta: TenantSpec
) -> None:
    ann = await add_user(client, gamma, "ann@example.com", "admin", "Ann Archer")
    bob = await add_user(client, gamma, "bob@example.com", "agent", "Bob Baker")
    cid = await add_user(client, gamma, "cid@sample.org", "customer", "Cid 100%_Real")
    deactivated = await client.delete(f"{USERS}/{bob['id']}", headers=admin_headers(gamma))
    assert deactivated.status_code == 204

    async def ids(**params: str) -> list[str]:
        response = await client.get(USERS, params=params, headers=admin_headers(gamma))
        assert response.status_code == 200, response.text
        return [user["id"] for user in response.json()["data"] if user["realm"] == builtin(gamma)]

    assert await ids() == [ann["id"], bob["id"], cid["id"]]
    assert await ids(role="admin") == [ann["id"]]
    assert await ids(role="customer") == [cid["id"]]
    assert await ids(status="inactive") == [bob["id"]]
    assert await ids(status="active", role="agent") == []
    assert await ids(q="EXAMPLE.com") == [ann["id"], bob["id"]]
    assert await ids(q="baker") == [bob["id"]]
    # The search's own wildcards are taken literally.
    assert await ids(q="100%_") == [cid["id"]]
    assert await ids(q="%") == [cid["id"]]
    assert await ids(q="a_c") == []  # as a wildcard, "_" would find Ann Archer

    page = await client.get(USERS, params={"per_page": "1", "page": "2", "q": "@"}, headers=admin_headers(gamma))
    pagination = page.json()["pagination"]
    links = {name: pagination.pop(name) for name in ("next_page_url", "prev_page_url")}
    assert pagination == {"total": 3, "per_page": 1, "current_page": 2, "last_page": 3}
    assert {name: (urlsplit(url).path, parse_qs(urlsplit(url).query)) for name, url in links.items()} == {
        "next_page_url": (USERS, {"per_page": ["1"], "q": ["@"], "page": ["3"]}),
        "prev_page_url": (USERS, {"per_page": ["1"], "q": ["@"], "page": ["1"]}),
    }
    assert [user["email"] for user in page.json()["data"]] == ["bob@example.com"]
    shown = await client.get(f"{USERS}/{ann['id']}", headers=admin_headers(gamma))
    assert shown.status_code == 200
    assert {key: shown.json()[key] for key in ("name", "email", "role", "status", "subject", "last_login_at")} == {
        "name": "Ann Archer",
        "email": "ann@example.com",
        "role": "admin",
        "status": "active",
        "subject": ann["id"],
        "last_login_at": None,
    }

    # Another tenant sees none of them, and not one by its id either.
    theirs = await client.get(USERS, params={"q": "@"}, headers=admin_headers(beta) | {})
    assert theirs.status_code == 401  # beta's admin role is "boss": alpha's role names grant nothing there
    beta_admin = auth_headers(beta, token(beta, roles=["boss", "reader"], scope=ADMIN_SCOPE))
    listed = await client.get(USERS, params={"q": "@"}, headers=beta_admin)
    assert (listed.status_code, listed.json()["data"]) == (200, [])
    foreign = await client.get(f"{USERS}/{ann['id']}", headers=beta_admin)
    assert (foreign.status_code, foreign.json()["code"]) == (404, "USER_NOT_FOUND")


async def test_bad_directory_input_is_a_400_that_changes_nothing(
    client: httpx.AsyncClient, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    await add_user(client, gamma, "dora@example.com")
    before = await db.fetch("SELECT * FROM app_user WHERE tenant_id = $1 ORDER BY id", gamma.id)
    headers = admin_headers(gamma)
    for params in ({"role": "boss"}, {"status": "gone"}, {"per_page": "101"}, {"q": ""}):
        response = await client.get(USERS, params=params, headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "INPUT_VALIDATION_FAILURE"), params
    for body in (
        {"email": "not-an-address", "password": PASSWORD, "role": "agent"},
        {"email": "eve@example.com", "password": "short", "role": "agent"},
        {"email": "eve@example.com", "password": PASSWORD, "role": "owner"},
        {"email": "eve@example.com", "password": PASSWORD, "role": "agent", "admin": True},
        {"password": PASSWORD, "role": "agent"},
    ):
        response = await client.post(USERS, json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "INPUT_VALIDATION_FAILURE"), body
    taken = await client.post(
        USERS, json={"email": "DORA@example.com", "password": PASSWORD, "role": "agent"}, headers=headers
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "USER_EXISTS")
    absent = await client.put(f"{USERS}/{uuid.uuid4()}", json={"status": "inactive"}, headers=headers)
    assert (absent.status_code, absent.json()["code"]) == (404, "USER_NOT_FOUND")
    assert await db.fetch("SELECT * FROM app_user WHERE tenant_id = $1 ORDER BY id", gamma.id) == before


async def test_users_of_an_external_realm_appear_on_their_first_call(
    client: httpx.AsyncClient, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    bearer = token(gamma, roles=["viewer"], subject="kc-7", name="Kim Cole", email="kim@example.com")
    assert (await client.get(ME, headers=auth_headers(gamma, bearer))).status_code == 200
    listed = await client.get(USERS, params={"q": "kim"}, headers=admin_headers(gamma))
    [kim] = listed.json()["data"]
    assert {key: kim[key] for key in ("subject", "realm", "name", "email", "role", "status")} == {
        "subject": "kc-7",
        "realm": gamma.realms[0].name,
        "name": "Kim Cole",
        "email": "kim@example.com",
        "role": "agent",
        "status": "active",
    }
    assert kim["last_seen_at"] is not None
    events = await db.fetch(
        "SELECT kind, actor FROM user_event WHERE tenant_id = $1 AND user_id = $2", gamma.id, uuid.UUID(kim["id"])
    )
    assert [tuple(event) for event in events] == [("user.created", "kc-7")]
    # Deactivated in the directory, its tokens are refused here at once.
    assert (await client.delete(f"{USERS}/{kim['id']}", headers=admin_headers(gamma))).status_code == 204
    refused = await client.get(ME, headers=auth_headers(gamma, bearer))
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)


async def test_last_seen_is_written_at_most_once_a_minute(
    database_url: str, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    database = Database(database_url, min_size=1, max_size=1)
    await database.open()
    try:
        users = UserRepository(database)
        start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
        realm = gamma.realms[0].name

        async def seen(at: datetime.datetime, name: str) -> tuple[Any, ...]:
            status = await users.seen_external(gamma.id, realm, "jit-1", name=name, email=None, role="agent", now=at)
            row = await db.fetchrow(
                "SELECT last_seen_at, name FROM app_user WHERE tenant_id = $1 AND subject = 'jit-1'", gamma.id
            )
            return status, row["last_seen_at"], row["name"]

        assert await seen(start, "First") == ("active", start, "First")
        assert await seen(start + datetime.timedelta(seconds=59), "Second") == ("active", start, "First")
        later = start + datetime.timedelta(seconds=61)
        assert await seen(later, "Third") == ("active", later, "Third")
        assert (
            await db.fetchval(
                "SELECT count(*) FROM user_event e JOIN app_user u ON u.tenant_id = e.tenant_id AND u.id = e.user_id "
                "WHERE e.tenant_id = $1 AND u.subject = 'jit-1'",
                gamma.id,
            )
            == 1
        )
    finally:
        await database.close()


async def test_a_users_first_calls_racing_each_other_are_all_admitted(
    database_url: str, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    """Two first calls of a new user at once (two workers): the second waits for the first's insert, and must then
    see the committed row rather than the snapshot from before it (which made it a 401 in CI)."""
    database = Database(database_url, min_size=1, max_size=1)
    await database.open()
    try:
        users = UserRepository(database)
        now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
        realm = gamma.realms[0].name
        first = db.transaction()
        await first.start()
        await db.execute(
            "INSERT INTO app_user (tenant_id, id, realm, subject, builtin, role, status, created_at, updated_at, "
            "last_seen_at) VALUES ($1, $2, $3, 'racer', false, 'agent', 'active', $4, $4, $4)",
            gamma.id,
            uuid.uuid4(),
            realm,
            now,
        )
        second = asyncio.create_task(
            users.seen_external(gamma.id, realm, "racer", name=None, email=None, role="agent", now=now)
        )
        await wait_until_blocked_on_a_lock(database_url)
        assert not second.done()
        await first.commit()
        assert await asyncio.wait_for(second, 10) == "active"
        count = await db.fetchval("SELECT count(*) FROM app_user WHERE tenant_id = $1 AND subject = 'racer'", gamma.id)
        assert count == 1
    finally:
        await database.close()


async def wait_until_blocked_on_a_lock(database_url: str) -> None:
    """Until a session runs the directory's first-call upsert and waits for a lock. (Watched from a connection of its
    own: inside a transaction, pg_stat_activity is a snapshot taken at its first read.)"""
    watcher = await asyncpg.connect(database_url)
    try:
        for _ in range(500):
            if await watcher.fetchval(WAITING + " AND query LIKE '%INSERT INTO app_user AS u%'"):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("no session waited for the row lock within 10 s")
    finally:
        await watcher.close()


# ---------------------------------------------------------------------------------------------------------------
# sign-in


async def test_a_user_signs_in_and_calls_the_api_with_the_token(client: httpx.AsyncClient, gamma: TenantSpec) -> None:
    user = await add_user(client, gamma, "Fay@Example.com", "agent", "Fay Fox")
    response = await login(client, gamma, "fay@example.COM", PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == {"id": user["id"], "name": "Fay Fox", "email": "Fay@Example.com", "role": "agent"}
    expires = datetime.datetime.fromisoformat(body["expires_at"])
    assert 0 < (expires - datetime.datetime.now(datetime.UTC)).total_seconds() <= 900
    me = await client.get(ME, headers=as_user(gamma, body["token"]))
    assert me.status_code == 200, me.text
    assert {key: me.json()[key] for key in ("subject", "realm", "roles", "scopes", "service_account")} == {
        "subject": user["id"],
        "realm": builtin(gamma),
        "roles": ["agent"],
        "scopes": ["tickets:read", "tickets:write"],
        "service_account": False,
    }
    # The ticket it creates names the user.
    api = TenantApi(client, gamma, body["token"])
    request_type = await TenantApi.admin(client, gamma).ticket_type("REQ")
    created = await client.post(
        TICKETS,
        params={"type": "agent", "module": "ticketing"},
        json={"ticketTypeId": request_type["id"], "data": {field_ids(request_type)["title"]: "signed in"}},
        headers=as_user(gamma, api.bearer),
    )
    assert created.status_code == 201, created.text
    shown = await client.get(f"{TICKETS}/{created.json()['objectId']}", headers=as_user(gamma, body["token"]))
    assert shown.json()["created_by"] == user["id"]
    listed = await client.get(f"{USERS}/{user['id']}", headers=admin_headers(gamma))
    assert listed.json()["last_login_at"] is not None


INVALID_INVITATION = {
    "error": True,
    "code": "INVALID_INVITATION",
    "message": "The invitation is not valid: unknown, used or expired",
    "status": 401,
}


async def invite(http: httpx.AsyncClient, tenant: TenantSpec, email: str, role: str = "agent") -> dict[str, Any]:
    response = await http.post(USERS, json={"email": email, "role": role}, headers=admin_headers(tenant))
    assert response.status_code == 201, response.text
    invited: dict[str, Any] = response.json()
    return invited


async def accept(http: httpx.AsyncClient, tenant: TenantSpec, token: str, password: str) -> httpx.Response:
    body = {"token": token, "password": password}
    return await http.post(INVITATION, json=body, headers={"x-tenantid": str(tenant.id)})


async def test_an_invited_user_sets_a_password_with_the_token_once(
    client: httpx.AsyncClient, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    invited = await invite(client, gamma, "Ivy@Example.com")
    invitation = invited.pop("invitation")
    assert (invited["status"], invited["email"], invited["role"]) == ("inactive", "Ivy@Example.com", "agent")
    expires = datetime.datetime.fromisoformat(invitation["expires_at"]) - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=7) - datetime.timedelta(minutes=1) < expires <= datetime.timedelta(days=7)
    assert len(invitation["token"]) >= 43
    # Only its digest is stored; until it is accepted, no password signs the user in.
    stored = await db.fetchrow(
        "SELECT password_hash, invitation_hash FROM app_user WHERE tenant_id = $1 AND id = $2",
        gamma.id,
        uuid.UUID(invited["id"]),
    )
    assert stored["password_hash"] is None and invitation["token"] not in stored["invitation_hash"]
    refused = await login(client, gamma, "ivy@example.com", PASSWORD)
    assert (refused.status_code, refused.json()) == (401, INVALID_CREDENTIALS)
    shown = await client.get(f"{USERS}/{invited['id']}", headers=admin_headers(gamma))
    assert shown.json() == invited  # the invitation is shown once: on create

    accepted = await accept(client, gamma, invitation["token"], PASSWORD)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["user"] == {"id": invited["id"], "name": None, "email": "Ivy@Example.com", "role": "agent"}
    me = await client.get(ME, headers=as_user(gamma, accepted.json()["token"]))
    assert (me.status_code, me.json()["subject"]) == (200, invited["id"])
    assert (await client.get(f"{USERS}/{invited['id']}", headers=admin_headers(gamma))).json()["status"] == "active"
    assert (await login(client, gamma, "ivy@example.com", PASSWORD)).status_code == 200
    # Once only.
    again = await accept(client, gamma, invitation["token"], "another password")
    assert (again.status_code, again.json()) == (401, INVALID_INVITATION)
    assert (await login(client, gamma, "ivy@example.com", PASSWORD)).status_code == 200


async def test_a_replayed_invitation_shows_no_token_and_no_password_is_kept_for_replays(
    client: httpx.AsyncClient, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    headers = {**admin_headers(gamma), "idempotency-key": f"invite-{uuid.uuid4()}"}
    body = {"email": "replayed@example.com", "role": "customer"}
    first = await client.post(USERS, json=body, headers=headers)
    again = await client.post(USERS, json=body, headers=headers)
    assert (first.status_code, again.status_code, again.headers["idempotent-replayed"]) == (201, 201, "true")
    token = first.json()["invitation"]["token"]
    assert again.json() == {**first.json(), "invitation": {**first.json()["invitation"], "token": None}}
    # The first answer's token still works; it was never stored.
    stored = await db.fetch("SELECT response FROM idempotency_key WHERE tenant_id = $1", gamma.id)
    assert stored and not any(token in row["response"] for row in stored)
    assert (await accept(client, gamma, token, PASSWORD)).status_code == 200
    # A create with a password under a key: the fingerprint stored for the key does not depend on the password.
    keyed = {**admin_headers(gamma), "idempotency-key": f"create-{uuid.uuid4()}"}
    made = await client.post(USERS, json={**body, "email": "keyed@example.com", "password": PASSWORD}, headers=keyed)
    assert made.status_code == 201, made.text
    fingerprints = {
        row["request_hash"]
        for row in await db.fetch("SELECT request_hash FROM idempotency_key WHERE tenant_id = $1", gamma.id)
    }
    # What a fingerprint over the password would be (the request as the service decodes it, encoded as the
    # idempotency service encodes requests): none of the stored ones.
    sent = CreateUserRequest(email="keyed@example.com", password=PASSWORD, role="customer")
    with_password = hashlib.sha256(msgspec.json.encode(["create_user", sent], order="sorted")).hexdigest()
    assert with_password not in fingerprints
    retried = await client.post(USERS, json={**body, "email": "keyed@example.com", "password": PASSWORD}, headers=keyed)
    assert (retried.status_code, retried.json()) == (201, made.json())


async def test_an_invitation_expires_and_ends_when_an_admin_sets_status_or_password(
    client: httpx.AsyncClient, gamma: TenantSpec, tenant_factory: TenantFactory, db: asyncpg.Connection
) -> None:
    expired = await invite(client, gamma, "old@example.com")
    await db.execute(
        "UPDATE app_user SET invitation_expires_at = now() - interval '1 second' WHERE tenant_id = $1 AND id = $2",
        gamma.id,
        uuid.UUID(expired["id"]),
    )
    deactivated = await invite(client, gamma, "gone@example.com")
    response = await client.delete(f"{USERS}/{deactivated['id']}", headers=admin_headers(gamma))
    assert response.status_code == 204
    reset = await invite(client, gamma, "reset@example.com")
    response = await client.put(f"{USERS}/{reset['id']}", json={"password": PASSWORD}, headers=admin_headers(gamma))
    assert response.status_code == 200, response.text
    readdressed = await invite(client, gamma, "mistyped@example.con")
    response = await client.put(
        f"{USERS}/{readdressed['id']}", json={"email": "meant@example.com"}, headers=admin_headers(gamma)
    )
    assert response.status_code == 200, response.text
    renamed = await invite(client, gamma, "renamed@example.com")
    response = await client.put(f"{USERS}/{renamed['id']}", json={"name": "Renamed"}, headers=admin_headers(gamma))
    assert response.status_code == 200, response.text
    for user in (expired, deactivated, reset, readdressed):
        refused = await accept(client, gamma, user["invitation"]["token"], PASSWORD)
        assert (refused.status_code, refused.json()) == (401, INVALID_INVITATION), user["email"]
    assert (await client.get(f"{USERS}/{deactivated['id']}", headers=admin_headers(gamma))).json()["status"] == (
        "inactive"
    )
    # A change of name leaves the invitation as it was.
    assert (await accept(client, gamma, renamed["invitation"]["token"], PASSWORD)).status_code == 200
    # Another tenant's invitation, unknown tokens, and bad input.
    another = await invite(client, gamma, "another@example.com")
    elsewhere = await tenant_factory.fresh("delta", builtin_realm=True)
    other = await accept(client, elsewhere, another["invitation"]["token"], PASSWORD)
    assert (other.status_code, other.json()) == (401, INVALID_INVITATION)
    unknown = await accept(client, gamma, "x" * 43, PASSWORD)
    assert (unknown.status_code, unknown.json()) == (401, INVALID_INVITATION)
    short = await accept(client, gamma, "x" * 43, "short")
    assert short.status_code == 400 and short.json()["code"] == "INPUT_VALIDATION_FAILURE"
    missing = await client.post(INVITATION, json={"token": "x" * 43, "password": PASSWORD})
    assert missing.status_code == 400 and missing.json()["validationResult"]["reason"] == {
        "x-tenantid": "name the tenant by this header or tenant_id"
    }


async def test_a_wrong_password_an_unknown_email_and_a_deactivated_user_get_the_same_answer(
    client: httpx.AsyncClient, gamma: TenantSpec
) -> None:
    await add_user(client, gamma, "gil@example.com")
    hal = await add_user(client, gamma, "hal@example.com")
    assert (await client.delete(f"{USERS}/{hal['id']}", headers=admin_headers(gamma))).status_code == 204
    answers = [
        await login(client, gamma, "gil@example.com", "wrong password"),
        await login(client, gamma, "nobody@example.com", PASSWORD),
        await login(client, gamma, "hal@example.com", PASSWORD),
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()) == (401, INVALID_CREDENTIALS)
        assert answer.headers["www-authenticate"] == 'Bearer realm="ticketing"'
    assert len({answer.content for answer in answers}) == 1


async def test_a_deactivated_users_token_is_refused_and_works_again_when_reactivated(
    client: httpx.AsyncClient, gamma: TenantSpec
) -> None:
    user = await add_user(client, gamma, "ida@example.com")
    bearer = (await login(client, gamma, "ida@example.com", PASSWORD)).json()["token"]
    assert (await client.get(ME, headers=as_user(gamma, bearer))).status_code == 200
    assert (await client.delete(f"{USERS}/{user['id']}", headers=admin_headers(gamma))).status_code == 204
    refused = await client.get(ME, headers=as_user(gamma, bearer))
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
    back = await client.put(f"{USERS}/{user['id']}", json={"status": "active"}, headers=admin_headers(gamma))
    assert (back.status_code, back.json()["status"]) == (200, "active")
    assert (await client.get(ME, headers=as_user(gamma, bearer))).status_code == 200


async def test_a_reset_password_replaces_the_old_one(client: httpx.AsyncClient, gamma: TenantSpec) -> None:
    user = await add_user(client, gamma, "jo@example.com")
    changed = await client.put(
        f"{USERS}/{user['id']}", json={"password": "a new passphrase", "role": "admin"}, headers=admin_headers(gamma)
    )
    assert (changed.status_code, changed.json()["role"]) == (200, "admin")
    assert (await login(client, gamma, "jo@example.com", PASSWORD)).status_code == 401
    signed_in = await login(client, gamma, "jo@example.com", "a new passphrase")
    assert (signed_in.status_code, signed_in.json()["user"]["role"]) == (200, "admin")
    me = await client.get(ME, headers=as_user(gamma, signed_in.json()["token"]))
    assert me.json()["permissions"] == ["admin", "comment", "delete", "read", "write"]


async def test_an_outdated_hash_is_upgraded_at_sign_in(
    client: httpx.AsyncClient, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    import argon2

    user = await add_user(client, gamma, "kai@example.com")
    # The server hashes with the cheapest profile (tests/support.py): this one differs from it in memory.
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=16, parallelism=1).hash(PASSWORD)
    await db.execute(
        "UPDATE app_user SET password_hash = $2 WHERE tenant_id = $1 AND id = $3", gamma.id, weak, uuid.UUID(user["id"])
    )
    assert (await login(client, gamma, "kai@example.com", PASSWORD)).status_code == 200
    stored = await db.fetchval(
        "SELECT password_hash FROM app_user WHERE tenant_id = $1 AND id = $2", gamma.id, uuid.UUID(user["id"])
    )
    assert stored != weak
    assert stored.startswith("$argon2id$")
    assert not argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST).check_needs_rehash(stored)
    assert (await login(client, gamma, "kai@example.com", PASSWORD)).status_code == 200


async def test_failures_are_throttled_per_account_without_locking_it_for_good(
    client: httpx.AsyncClient, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    await add_user(client, gamma, "lee@example.com")
    for _ in range(6):
        assert (await login(client, gamma, "lee@example.com", "guess")).status_code == 401
    here = "account:lee@example.com from:127.0.0.1"
    account = "account:lee@example.com"
    assert (await failures(db, gamma, here), await failures(db, gamma, account)) == (6, 6)
    # Time is moved by rewriting the last failure, not by waiting: nine failures from here, the last just now, make
    # this address wait 2^(9-5-1) = 8 seconds for the account, and the right password waits too, uncounted.
    await set_failures(db, gamma, here, 9)
    throttled = await login(client, gamma, "lee@example.com", PASSWORD)
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["retry-after"])
    assert 1 <= retry_after <= 8
    assert throttled.json() == {
        "error": True,
        "code": "TOO_MANY_ATTEMPTS",
        "message": f"Too many failed sign-ins; retry in {retry_after} seconds",
        "status": 429,
    }
    assert await failures(db, gamma, here) == 9
    # However many failures, the account waits at most a minute after the last one.
    await set_failures(db, gamma, here, 1000)
    assert 50 <= int((await login(client, gamma, "lee@example.com", PASSWORD)).headers["retry-after"]) <= 60
    # Another account from the same address is not held up by this one.
    await add_user(client, gamma, "max@example.com")
    assert (await login(client, gamma, "max@example.com", PASSWORD)).status_code == 200
    await set_failures(db, gamma, here, 1000, ago=61)
    assert (await login(client, gamma, "lee@example.com", PASSWORD)).status_code == 200
    # A successful sign-in clears the account's counts.
    assert (await failures(db, gamma, here), await failures(db, gamma, account)) == (None, None)

    # An attacker guessing from elsewhere, however often, does not hold the owner up at its own address...
    await set_failures(db, gamma, "account:lee@example.com from:203.0.113.9", 1000)
    await set_failures(db, gamma, account, 99)
    assert (await login(client, gamma, "lee@example.com", PASSWORD)).status_code == 200
    # ...until the account has failed a hundred times from anywhere: then everyone waits, a minute at most.
    await set_failures(db, gamma, account, 1000)
    assert 50 <= int((await login(client, gamma, "lee@example.com", PASSWORD)).headers["retry-after"]) <= 60


async def test_guesses_sent_at_once_take_their_turns(client: httpx.AsyncClient, gamma: TenantSpec) -> None:
    """Thirty wrong passwords for one account at once, from one address: the check and the count are one step, so
    exactly the free failures (5) and the one that reaches the first wait are checked; the rest wait."""
    await add_user(client, gamma, "ann@example.com")
    answers = await asyncio.gather(*(login(client, gamma, "ann@example.com", f"guess {n}") for n in range(30)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 6 + [429] * 24, statuses


async def set_failures(db: asyncpg.Connection, tenant: TenantSpec, key: str, count: int, *, ago: float = 0.0) -> None:
    """The key's failures, the last one `ago` seconds ago."""
    await db.execute(
        "INSERT INTO login_failure (tenant_id, throttle_key, failures, last_failure_at) "
        "VALUES ($1, $2, $3, now() - make_interval(secs => $4)) ON CONFLICT (tenant_id, throttle_key) DO UPDATE "
        "SET failures = excluded.failures, last_failure_at = excluded.last_failure_at",
        tenant.id,
        key,
        count,
        ago,
    )


async def test_counts_quiet_for_fifteen_minutes_are_swept(
    database_url: str, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    await set_failures(db, gamma, "account:old@example.com from:198.51.100.1", 3, ago=15 * 60 + 5)
    await set_failures(db, gamma, "address:198.51.100.1", 40, ago=16 * 60)
    await set_failures(db, gamma, "account:recent@example.com from:198.51.100.2", 3, ago=14 * 60)
    database = Database(database_url, min_size=1, max_size=1)
    await database.open()
    try:
        sweep = QuietLoginFailureSweep(
            LoginFailureRepository(database), IdempotencyRepository(database).all_tenants, 300
        )
        assert await sweep.sweep() >= 2
    finally:
        await database.close()
    left = await db.fetch("SELECT throttle_key FROM login_failure WHERE tenant_id = $1", gamma.id)
    assert {row["throttle_key"] for row in left} == {"account:recent@example.com from:198.51.100.2"}


async def test_failures_are_throttled_per_client_address(
    client: httpx.AsyncClient, gamma: TenantSpec, db: asyncpg.Connection
) -> None:
    for attempt in range(21):
        assert (await login(client, gamma, f"spray-{attempt}@example.com", "guess")).status_code == 401
    address = "address:127.0.0.1"
    assert await failures(db, gamma, address) == 21
    await db.execute(
        "UPDATE login_failure SET failures = 25, last_failure_at = now() WHERE tenant_id = $1 AND throttle_key = $2",
        gamma.id,
        address,
    )
    throttled = await login(client, gamma, "spray-new@example.com", "guess")
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 16
    assert await failures(db, gamma, "account:spray-new@example.com") == 0  # its row is made, the attempt not counted


async def failures(db: asyncpg.Connection, tenant: TenantSpec, key: str) -> int | None:
    count: int | None = await db.fetchval(
        "SELECT failures FROM login_failure WHERE tenant_id = $1 AND throttle_key = $2", tenant.id, key
    )
    return count


async def test_bad_sign_in_input_is_a_400(client: httpx.AsyncClient, gamma: TenantSpec, alpha: TenantSpec) -> None:
    headers = {"x-tenantid": str(gamma.id)}
    for body in (
        {"email": "a@example.com"},
        {"email": "", "password": "x"},
        {"email": "a@b.c", "password": "x", "x": 1},
    ):
        response = await client.post(LOGIN, json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "INPUT_VALIDATION_FAILURE"), body
    nameless = await client.post(LOGIN, json={"email": "a@example.com", "password": "x"})
    assert (nameless.status_code, nameless.json()["validationResult"]["reason"]) == (
        400,
        {"x-tenantid": "name the tenant by this header or tenant_id"},
    )
    unknown = await client.post(
        LOGIN, json={"email": "a@example.com", "password": "x"}, headers={"x-tenantid": str(uuid.uuid4())}
    )
    assert (unknown.status_code, unknown.json()) == (404, {"error": True, "message": "Tenant not found", "status": 404})
    # The tenant in the body works as the header does; alpha has no builtin realm.
    no_realm = await client.post(LOGIN, json={"email": "a@example.com", "password": "x", "tenant_id": str(alpha.id)})
    assert (no_realm.status_code, no_realm.json()["code"]) == (404, "SIGN_IN_UNAVAILABLE")


async def test_an_unknown_email_takes_as_long_as_a_wrong_password(
    migrated: str, workspace: Path, tenant_factory: TenantFactory
) -> None:
    """Medians over many tries, alternating, on a server whose throttle lets them all through."""
    settings = make_settings(
        migrated,
        workspace,
        login_free_failures_per_account=1000,
        login_free_failures_per_address=1000,
        password_hash_profile="RFC_9106_LOW_MEMORY",
    )
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        tenant = await tenant_factory.fresh("timing", builtin_realm=True)
        await add_user(http, tenant, "nia@example.com")
        timings: dict[str, list[float]] = {"wrong password": [], "unknown email": []}
        for attempt in range(12):
            for kind, email in (("wrong password", "nia@example.com"), ("unknown email", f"x{attempt}@example.com")):
                started = time.perf_counter()
                response = await login(http, tenant, email, "not the password")
                timings[kind].append(time.perf_counter() - started)
                assert (response.status_code, response.json()) == (401, INVALID_CREDENTIALS)
        wrong, unknown = (statistics.median(timings[kind]) for kind in ("wrong password", "unknown email"))
        # Both verify a password (tens of milliseconds of Argon2id); a shortcut for unknown emails would be far faster.
        assert abs(wrong - unknown) < 0.25 * max(wrong, unknown), timings


# ---------------------------------------------------------------------------------------------------------------
# service accounts, keys, discovery


@pytest.fixture
async def provisioning(database_url: str) -> AsyncIterator[Provisioning]:
    database = Database(database_url, min_size=1, max_size=2)
    await database.open()
    try:
        yield Provisioning(database, UserRepository(database), ClientRepository(database), PasswordHasher("CHEAPEST"))
    finally:
        await database.close()


def config_of(tenant: TenantSpec, workspace: Path) -> Any:
    assert tenant.directory is not None
    return next(c for c in load_tenant_files(tenant.directory, workspace / "data") if c.id == tenant.id)


async def client_token(
    http: httpx.AsyncClient, realm: str, client_id: str, secret: str, **extra: str
) -> httpx.Response:
    return await http.post(
        f"/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, **extra},
    )


async def test_client_credentials_tokens_pass_the_ordinary_auth_path_until_revoked(
    client: httpx.AsyncClient, gamma: TenantSpec, provisioning: Provisioning, workspace: Path
) -> None:
    config = config_of(gamma, workspace)
    secret = await provisioning.put_client(config, "billing", ["agent"], ["tickets:read", "tickets:write"])
    response = await client_token(client, builtin(gamma), "billing", secret)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 900, "tickets:read tickets:write")
    assert response.headers["cache-control"] == "no-store"
    me = await client.get(ME, headers=as_user(gamma, body["access_token"]))
    assert me.status_code == 200, me.text
    assert {key: me.json()[key] for key in ("subject", "service_account", "roles")} == {
        "subject": "service-account-billing",
        "service_account": True,
        "roles": ["agent"],
    }
    # HTTP Basic credentials (client_secret_basic) work as well.
    basic = base64.b64encode(f"billing:{secret}".encode()).decode()
    by_basic = await client.post(
        f"/realms/{builtin(gamma)}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials"},
        headers={"authorization": f"Basic {basic}"},
    )
    assert by_basic.status_code == 200, by_basic.text

    wrong = await client_token(client, builtin(gamma), "billing", secret + "x")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    unknown = await client_token(client, builtin(gamma), "nobody", secret)
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_client")
    grant = await client.post(
        f"/realms/{builtin(gamma)}/protocol/openid-connect/token", data={"grant_type": "password"}
    )
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    no_realm = await client_token(client, "no-such-realm", "billing", secret)
    assert (no_realm.status_code, no_realm.json()) == (404, {"error": "Realm does not exist"})

    assert await provisioning.revoke_client(config, "billing")
    # The revocation came from outside this server (as `python -m app client revoke` does): refused within seconds.
    deadline = time.monotonic() + 20
    while (refused := await client.get(ME, headers=as_user(gamma, body["access_token"]))).status_code == 200:
        assert time.monotonic() < deadline, "a revoked client's token still works"
        await asyncio.sleep(0.5)
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
    again = await client_token(client, builtin(gamma), "billing", secret)
    assert (again.status_code, again.json()["error"]) == (401, "invalid_client")


async def test_a_new_secret_ends_a_service_accounts_earlier_tokens_and_a_revoked_token_stays_dead(
    client: httpx.AsyncClient, gamma: TenantSpec, provisioning: Provisioning, workspace: Path
) -> None:
    config = config_of(gamma, workspace)
    scopes = ["tickets:read"]
    first_secret = await provisioning.put_client(config, "sync", ["agent"], scopes)
    before = (await client_token(client, builtin(gamma), "sync", first_secret)).json()["access_token"]
    # Issued in an earlier second than the change (`iat` has whole seconds).
    await asyncio.sleep(1.1)
    second_secret = await provisioning.put_client(config, "sync", ["agent"], scopes)  # a leaked secret replaced
    refused = await client.get(ME, headers=as_user(gamma, before))
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
    after = (await client_token(client, builtin(gamma), "sync", second_secret)).json()["access_token"]
    assert (await client.get(ME, headers=as_user(gamma, after))).status_code == 200
    # Revoked, then made again: the token from before the revocation does not come back. (Another client, whose
    # tokens no worker has checked yet: a worker re-reads a caller it has admitted within 15 seconds.)
    other_secret = await provisioning.put_client(config, "sync-2", ["agent"], scopes)
    revoked = (await client_token(client, builtin(gamma), "sync-2", other_secret)).json()["access_token"]
    assert await provisioning.revoke_client(config, "sync-2")
    await asyncio.sleep(1.1)
    made_again = await provisioning.put_client(config, "sync-2", ["agent"], scopes)
    refused = await client.get(ME, headers=as_user(gamma, revoked))
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
    fresh = (await client_token(client, builtin(gamma), "sync-2", made_again)).json()["access_token"]
    assert (await client.get(ME, headers=as_user(gamma, fresh))).status_code == 200


async def test_a_new_role_or_password_ends_a_users_earlier_tokens(client: httpx.AsyncClient, gamma: TenantSpec) -> None:
    user = await add_user(client, gamma, "rae@example.com", "admin")
    as_admin = (await login(client, gamma, "rae@example.com", PASSWORD)).json()["token"]
    assert (await client.get(USERS, headers=as_user(gamma, as_admin))).status_code == 200
    await asyncio.sleep(1.1)
    demoted = await client.put(f"{USERS}/{user['id']}", json={"role": "agent"}, headers=admin_headers(gamma))
    assert demoted.status_code == 200, demoted.text
    refused = await client.get(ME, headers=as_user(gamma, as_admin))
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
    as_agent = (await login(client, gamma, "rae@example.com", PASSWORD)).json()["token"]
    assert (await client.get(ME, headers=as_user(gamma, as_agent))).json()["roles"] == ["agent"]
    # A change that is neither (a name) leaves the tokens alone; a password reset ends them.
    renamed = await client.put(f"{USERS}/{user['id']}", json={"name": "Rae"}, headers=admin_headers(gamma))
    assert renamed.status_code == 200
    assert (await client.get(ME, headers=as_user(gamma, as_agent))).status_code == 200
    await asyncio.sleep(1.1)
    reset = await client.put(f"{USERS}/{user['id']}", json={"password": "a new password"}, headers=admin_headers(gamma))
    assert reset.status_code == 200
    refused = await client.get(ME, headers=as_user(gamma, as_agent))
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
    assert (await login(client, gamma, "rae@example.com", "a new password")).status_code == 200


async def test_discovery_and_jwks_verify_a_token_with_an_independent_library(
    client: httpx.AsyncClient, gamma: TenantSpec
) -> None:
    await add_user(client, gamma, "ona@example.com")
    issued = (await login(client, gamma, "ona@example.com", PASSWORD)).json()["token"]
    discovery = await client.get(f"/realms/{builtin(gamma)}/.well-known/openid-configuration")
    assert discovery.status_code == 200
    document = discovery.json()
    issuer = next(realm.issuer for realm in gamma.realms if realm.builtin)
    assert document["issuer"] == issuer
    assert document["jwks_uri"] == f"{issuer}/protocol/openid-connect/certs"
    assert document["token_endpoint"] == f"{issuer}/protocol/openid-connect/token"
    # The issuer is the realm's public URL; here the test server stands in for it.
    certs = await client.get(document["jwks_uri"].replace(issuer.split("/realms/")[0], ""))
    assert certs.status_code == 200
    keys = pyjwt.PyJWKSet.from_dict(certs.json())
    kid = pyjwt.get_unverified_header(issued)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims = pyjwt.decode(
        issued,
        key,
        algorithms=document["id_token_signing_alg_values_supported"],
        audience="ticketing-api",
        issuer=issuer,
    )
    assert claims["email"] == "ona@example.com"
    assert claims["tenant_id"] == str(gamma.id)


async def test_a_rotated_key_signs_new_tokens_while_the_old_ones_keep_working(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, workspace: Path
) -> None:
    tenant = await tenant_factory.fresh("rotating", builtin_realm=True)
    await add_user(client, tenant, "pat@example.com")
    before = (await login(client, tenant, "pat@example.com", PASSWORD)).json()["token"]
    new_kid = rotate_builtin_key(workspace / "data", tenant.slug, builtin(tenant), "ES256")
    await tenant_factory.apply(tenant)  # the sync `python -m app realm rotate-key` runs
    certs_url = f"/realms/{builtin(tenant)}/protocol/openid-connect/certs"
    deadline = time.monotonic() + 10
    while len((published := (await client.get(certs_url)).json())["keys"]) < 2:
        assert time.monotonic() < deadline, published
        await asyncio.sleep(0.05)
    assert published["keys"][0]["kid"] == new_kid
    after = (await login(client, tenant, "pat@example.com", PASSWORD)).json()["token"]
    assert pyjwt.get_unverified_header(after)["kid"] == new_kid
    assert pyjwt.get_unverified_header(before)["kid"] == published["keys"][1]["kid"]
    for bearer in (before, after):
        assert (await client.get(ME, headers=as_user(tenant, bearer))).status_code == 200


async def test_a_customer_sees_only_the_tickets_it_created_in_its_own_realm(
    client: httpx.AsyncClient, gamma: TenantSpec
) -> None:
    """Two realms of one tenant may issue the same `sub` to different people: a customer's own tickets are those its
    subject created in its realm, on every path (by id, in lists, comments)."""
    user = await add_user(client, gamma, "cy@example.com", "customer", "Cy Young")
    signed_in = await login(client, gamma, "cy@example.com", PASSWORD)
    cy = TenantApi(client, gamma, signed_in.json()["token"], realm=builtin(gamma))
    namesake = TenantApi.customer(client, gamma, subject=user["id"])  # the external realm, the same `sub`
    request_type = await namesake.ticket_type("REQ")
    title = field_ids(request_type)["title"]
    theirs = (await new_ticket(namesake, request_type["id"], {title: "The namesake's"}))["objectId"]
    mine = (await new_ticket(cy, request_type["id"], {title: "Cy's"}))["objectId"]
    for api, own, other in ((cy, mine, theirs), (namesake, theirs, mine)):
        assert (await api.get(own)).status_code == 200
        for response in (
            await api.get(other),
            await api.comments(other),
            await api.comment(other, {"content": "Is this mine?", "is_internal": False}),
        ):
            assert (response.status_code, response.json()) == (404, ticket_not_found(other)), response.request.url
        listed = await client.get(TICKETS, headers=api.headers)
        assert [ticket["object_id"] for ticket in listed.json()["data"]] == [own]
        assert listed.json()["pagination"]["total"] == 1
    # An agent sees both, each with its creator's subject.
    agent = await client.get(TICKETS, headers=auth_headers(gamma, token(gamma, subject="agent-1")))
    assert sorted(ticket["object_id"] for ticket in agent.json()["data"]) == sorted([mine, theirs])
    # A comment records its author's subject only: which of the two wrote it, the directory cannot say, so neither
    # one's name is shown under it.
    commented = await cy.comment(mine, {"content": "Any news?", "is_internal": False})
    assert commented.status_code == 201, commented.text
    assert commented.json()["author"] == {"id": user["id"], "name": None, "email": None}


async def test_comment_authors_are_people_from_the_directory(client: httpx.AsyncClient, gamma: TenantSpec) -> None:
    user = await add_user(client, gamma, "quinn@example.com", "agent", "Quinn Quill")
    bearer = (await login(client, gamma, "quinn@example.com", PASSWORD)).json()["token"]
    request_type = await TenantApi.admin(client, gamma).ticket_type("REQ")
    created = await client.post(
        TICKETS,
        params={"type": "agent", "module": "ticketing"},
        json={"ticketTypeId": request_type["id"], "data": {field_ids(request_type)["title"]: "people"}},
        headers=as_user(gamma, bearer),
    )
    object_id = created.json()["objectId"]
    comment = await client.post(
        f"{TICKETS}/{object_id}/comments", json={"content": "On it"}, headers=as_user(gamma, bearer)
    )
    assert comment.status_code == 201, comment.text
    quinn = {"id": user["id"], "name": "Quinn Quill", "email": "quinn@example.com"}
    assert comment.json()["author"] == quinn
    # An external realm's user: name and email from its token's claims, once it has called.
    external = token(gamma, roles=["agent"], subject="kc-rex", name="Rex Roe", email="rex@example.com")
    answer = await client.post(
        f"{TICKETS}/{object_id}/comments", json={"content": "Me too"}, headers=auth_headers(gamma, external)
    )
    assert answer.json()["author"] == {"id": "kc-rex", "name": "Rex Roe", "email": "rex@example.com"}
    listed = await client.get(f"{TICKETS}/{object_id}/comments", headers=as_user(gamma, bearer))
    assert [entry["author"] for entry in listed.json()["data"]] == [
        quinn,
        {"id": "kc-rex", "name": "Rex Roe", "email": "rex@example.com"},
    ]


async def test_sign_in_counts_against_the_tenants_plan_per_client_address(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    """A route without a token counts by client address (issue 12): successes and failures alike, before any
    password is checked, with the plan's headers on the answers that get through."""
    tenant = await tenant_factory.fresh(
        "signing", builtin_realm=True, rate_limits={"plan": "tight", "plans": {"tight": 3}}
    )
    await add_user(client, tenant, "ida@example.com")
    first = await login(client, tenant, "ida@example.com", PASSWORD)
    assert first.status_code == 200, first.text
    assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("3", "2")
    wrong = await login(client, tenant, "ida@example.com", "not the password")
    assert wrong.status_code == 401, wrong.text
    assert (wrong.headers["x-ratelimit-limit"], wrong.headers["x-ratelimit-remaining"]) == ("3", "1")
    second = await login(client, tenant, "ida@example.com", PASSWORD)
    assert (second.status_code, second.headers["x-ratelimit-remaining"]) == (200, "0")
    refused = await login(client, tenant, "ida@example.com", PASSWORD)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(refused.headers["retry-after"]) > 0
