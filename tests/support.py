"""Everything the tests share, in one place: key pairs, tenant files and tokens built the way a real identity
provider would build them; fresh tenants for each test; the service as a real HTTP server; a small client for the
v2 API; the contract's response bodies; and helpers for ticket types, tickets, states, races and the CLI.

Test modules import from here (or use the fixtures of tests/conftest.py), never from each other:
tests/test_suite_structure.py checks that.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import functools
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from litestar import Litestar

from app.__main__ import bind_socket
from app.asgi import create_app
from app.auth import jwt
from app.bootstrap import apply_tenants
from app.config import PROJECT_ROOT, Settings
from app.db import engine, piccolo_conf
from app.db.database import Database
from app.limits import http_protocol
from app.ratelimit.server import PrivateRedis
from app.tenancy import files
from app.tenancy.devkeys import generate_private_pem, public_jwk
from app.tenancy.model import TenantConfig
from app.tenancy.repository import TenantRepository
from app.tenancy.service import TenantService

T = TypeVar("T")
AUDIENCE = "ticketing-api"


# ---------------------------------------------------------------------------------------------------------------
# keys, tenant files, tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    algorithm: str
    private_pem: str = ""
    jwk: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.private_pem = generate_private_pem(self.algorithm)
        self.jwk = public_jwk(self.private_pem)

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    def public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        return (
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


@dataclass
class RealmSpec:
    name: str
    issuer: str
    key: SigningKey
    audience: str = AUDIENCE
    jwks_url: str | None = None
    # A builtin realm: the service issues its tokens, with a key it generates (`key` is not used).
    builtin: bool = False


# Role mappings of the two kinds of tenant the tests use: the same permissions under different role names, so a
# role name of one tenant means nothing in the other.
ALPHA_ROLES: dict[str, Any] = {
    "read": ["viewer", "agent", "admin"],
    "write": ["agent", "admin"],
    "admin": ["admin"],
    "support": "support",
    # Customer-level: the tickets they created only. Comment and delete roles are the defaults (write and customer
    # roles; admin roles).
    "customer": ["customer"],
}
BETA_ROLES: dict[str, Any] = {
    "read": ["reader", "agent"],
    "write": ["agent"],
    "admin": ["boss"],
    "support": "helpdesk",
    "customer": ["client"],
}
TEMPLATE_TYPES = ["request", "facility-request"]
# The test tenants' plan, like the example tenants' development plan (tenants/*.toml) but higher still: the races and
# Schemathesis send thousands of requests a minute as one client, many of them to one ticket, and no test may trip a
# rate limit it is not about (the headers still count). A test of the limits gives its tenant its own.
TEST_RATE_LIMITS: dict[str, Any] = {
    "plan": "test",
    "plans": {"test": 1_000_000},
    "ticket_writes_per_minute": 1_000_000,
}


@dataclass
class TenantSpec:
    id: uuid.UUID
    slug: str
    realms: list[RealmSpec]
    roles: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(ALPHA_ROLES))
    tenant_claim: str = "tenant_id"
    ticket_types: list[str] = field(default_factory=lambda: list(TEMPLATE_TYPES))
    # The file's `disabled` flag and `[cors] allowed_origins`.
    disabled: bool = False
    allowed_origins: list[str] = field(default_factory=list)
    # The folder its tenant file was written to, once it was (see TenantFactory).
    directory: Path | None = None
    # The file's [attachments] (limits per file and per ticket, allowed types); None: the defaults.
    attachments: dict[str, Any] | None = None
    # The file's [rate_limits] (plan, plans, clients, ticket_writes_per_minute); None: none (seed 004's defaults).
    rate_limits: dict[str, Any] | None = field(default_factory=lambda: copy.deepcopy(TEST_RATE_LIMITS))

    def toml(self) -> str:
        def quoted(values: list[str]) -> str:
            return "[" + ", ".join(json.dumps(v) for v in values) + "]"

        lines = [
            f'id = "{self.id}"',
            f'slug = "{self.slug}"',
            f'name = "Tenant {self.slug}"',
            f'tenant_claim = "{self.tenant_claim}"',
            f"ticket_types = {quoted(self.ticket_types)}",
            f"disabled = {json.dumps(self.disabled)}",
            "[roles]",
            f"read = {quoted(self.roles['read'])}",
            f"write = {quoted(self.roles['write'])}",
            f"admin = {quoted(self.roles['admin'])}",
            f'support = "{self.roles["support"]}"',
            *(
                f"{kind} = {quoted(self.roles[kind])}"
                for kind in ("customer", "comment", "delete")
                if kind in self.roles
            ),
        ]
        for realm in self.realms:
            lines += [
                "[[realms]]",
                *(['kind = "builtin"'] if realm.builtin else []),
                f'name = "{realm.name}"',
                f'issuer = "{realm.issuer}"',
                f'audience = "{realm.audience}"',
                f'algorithms = ["{realm.key.algorithm}"]',
                f'keys = {{ generate = "{realm.key.algorithm}" }}'
                if realm.builtin
                else f'keys = {{ jwks_url = "{realm.jwks_url}" }}'
                if realm.jwks_url
                else f"keys = {{ jwks = {{ keys = [ {_inline_table(realm.key.jwk)} ] }} }}",
            ]
        if self.allowed_origins:
            lines += ["[cors]", f"allowed_origins = {quoted(self.allowed_origins)}"]
        if self.attachments is not None:
            lines += ["[attachments]", *(f"{key} = {json.dumps(value)}" for key, value in self.attachments.items())]
        if self.rate_limits is not None:
            lines += ["[rate_limits]", *(f"{key} = {_toml_value(value)}" for key, value in self.rate_limits.items())]
        return "\n".join(lines) + "\n"

    def realm(self, name: str | None = None) -> RealmSpec:
        return next(r for r in self.realms if name in (None, r.name))


def _inline_table(data: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in data.items()) + " }"


def _toml_value(value: Any) -> str:
    """A string, number or table of them (keys quoted: a subject may hold any character)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_tenants(directory: Path, tenants: list[TenantSpec]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for tenant in tenants:
        (directory / f"{tenant.slug}.toml").write_text(tenant.toml())
    return directory


def claims_for(
    tenant: TenantSpec,
    realm: RealmSpec,
    *,
    roles: list[str] | None = None,
    scope: str = "tickets:read tickets:write",
    subject: str = "user-1",
    ttl: int = 600,
    **extra: Any,
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": realm.issuer,
        "aud": realm.audience,
        "sub": subject,
        "iat": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
        "scope": scope,
        "realm_access": {"roles": ["agent"] if roles is None else roles},
        tenant.tenant_claim: str(tenant.id),
    }
    claims.update(extra)
    return claims


def sign(claims: dict[str, Any], key: SigningKey, kid: str | None = None) -> str:
    return jwt.sign(claims, key.private_pem, kid or key.kid, key.algorithm)


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: SigningKey) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the realm's (public) verification key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(key.public_pem().encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tamper(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def tampered_signature(token: str) -> str:
    """The token with the end of its signature replaced: well-formed, correctly signed no more."""
    return token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")


def load_tenant_files(tenants_dir: Path, data_dir: Path) -> list[TenantConfig]:
    """Tenant files checked the way the service checks them (realm keys by the JWT module)."""
    return files.load_tenant_files(tenants_dir, data_dir, jwt.signing_key_problem)


def load_tenant_file(path: Path, data_dir: Path) -> TenantConfig:
    return files.load_tenant_file(path, data_dir, jwt.signing_key_problem)


async def sync_tenants(dsn: str, configs: list[TenantConfig]) -> list[str]:
    """What `python -m app tenants sync` does to the given tenants' rows (leaving every other tenant as it is):
    returns the slugs that changed."""
    db = Database(dsn, min_size=1, max_size=1)
    await db.open()
    try:
        return (await TenantService(db, TenantRepository(db)).sync(configs, disable_missing=False)).changed
    finally:
        await db.close()


@functools.cache
def _private_key(private_pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(private_pem.encode(), password=None)


def pyjwt_sign(claims: dict[str, Any], key: SigningKey, kid: str | None = None, algorithm: str | None = None) -> str:
    """A token signed by PyJWT, an independent JOSE implementation, with the private key parsed once: about 1 ms
    where `sign` (python-jose, which parses and checks the PEM on every call) takes about 40 ms for RSA."""
    import jwt as pyjwt

    return pyjwt.encode(
        claims, _private_key(key.private_pem), algorithm=algorithm or key.algorithm, headers={"kid": kid or key.kid}
    )


# ---------------------------------------------------------------------------------------------------------------
# the API: paths, tokens, headers, a client per principal

API = "/api/v2/ticketing"
ME = f"{API}/me"
TYPES = f"{API}/ticket-type"
TICKETS = f"{API}/ticket"
STATES = f"{API}/ticket-state"
ATTACHMENTS = f"{API}/attachments"
USERS = f"{API}/users"
LOGIN = f"{API}/auth/login"
INVITATION = f"{API}/auth/invitation"
CATALOG = {"type": "template", "module": "ticketing"}
AGENT_SCOPE = "tickets:read tickets:write"
ADMIN_SCOPE = "tickets:read tickets:write tickets:admin"


def token(
    tenant: TenantSpec,
    *,
    realm: str | None = None,
    roles: list[str] | None = None,
    scope: str = AGENT_SCOPE,
    subject: str = "agent-1",
    **claims: Any,
) -> str:
    """A valid token of the tenant's realm (its first one unless named), signed with the realm's key; `claims`
    (and ttl) override or add claims."""
    issuer = tenant.realm(realm)
    return sign(claims_for(tenant, issuer, roles=roles, scope=scope, subject=subject, **claims), issuer.key)


def auth_headers(tenant: TenantSpec, bearer: str | None, *, realm: str | None = None, **extra: str) -> dict[str, str]:
    """The contract's headers for a call to the tenant (realmname: its first realm unless named)."""
    headers = {
        "x-tenantid": str(tenant.id),
        "realmname": realm or tenant.realms[0].name,
        "accept": "application/json",
        **extra,
    }
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return headers


@dataclass
class TenantApi:
    """Calls as one principal of one tenant."""

    http: httpx.AsyncClient
    tenant: TenantSpec
    bearer: str
    realm: str | None = None  # the realm named in realmname (the tenant's first unless set)

    @classmethod
    def agent(cls, http: httpx.AsyncClient, tenant: TenantSpec, subject: str = "agent-1") -> TenantApi:
        return cls(http, tenant, token(tenant, roles=["agent"], subject=subject))

    @classmethod
    def customer(cls, http: httpx.AsyncClient, tenant: TenantSpec, subject: str = "customer-1") -> TenantApi:
        """A caller with only the tenant's customer role: its own tickets, no internal notes."""
        return cls(http, tenant, token(tenant, roles=list(tenant.roles["customer"]), subject=subject))

    @classmethod
    def admin(cls, http: httpx.AsyncClient, tenant: TenantSpec, subject: str = "admin-1") -> TenantApi:
        roles = tenant.roles["admin"]
        return cls(http, tenant, token(tenant, roles=list(roles), scope=ADMIN_SCOPE, subject=subject))

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.tenant, self.bearer, realm=self.realm)

    async def ticket_types(self) -> list[dict[str, Any]]:
        response = await self.http.get(TYPES, headers=self.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    async def ticket_type(self, prefix: str) -> dict[str, Any]:
        return next(t for t in await self.ticket_types() if t["prefix"] == prefix)

    async def create(self, type_id: str, data: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.http.post(
            TICKETS,
            params=CATALOG,
            headers={**self.headers, **headers},
            json={"ticketTypeId": type_id, "data": data},
        )

    async def get(self, object_id: str) -> httpx.Response:
        return await self.http.get(f"{TICKETS}/{object_id}", headers=self.headers)

    async def update(
        self, object_id: str, body: Any, params: dict[str, str] | None = None, **headers: str
    ) -> httpx.Response:
        return await self.http.patch(
            f"{TICKETS}/{object_id}/update",
            params=CATALOG if params is None else params,
            headers={**self.headers, **headers},
            json=body,
        )

    async def change_status(self, object_id: str, body: Any, **headers: str) -> httpx.Response:
        return await self.http.patch(f"{TICKETS}/{object_id}/status", headers={**self.headers, **headers}, json=body)

    async def assign(self, object_id: str, body: Any, **headers: str) -> httpx.Response:
        return await self.http.patch(f"{TICKETS}/{object_id}/assign", headers={**self.headers, **headers}, json=body)

    async def delete(self, object_id: str, **headers: str) -> httpx.Response:
        return await self.http.delete(f"{TICKETS}/{object_id}", headers={**self.headers, **headers})

    async def history(self, object_id: str, **params: str) -> httpx.Response:
        return await self.http.get(f"{TICKETS}/{object_id}/history", params=params, headers=self.headers)

    async def comment(self, object_id: str, body: Any, **headers: str) -> httpx.Response:
        return await self.http.post(comments_path(object_id), headers={**self.headers, **headers}, json=body)

    async def comments(self, object_id: str, **params: str) -> httpx.Response:
        return await self.http.get(comments_path(object_id), params=params, headers=self.headers)


def comments_path(object_id: str, comment_id: str | None = None) -> str:
    path = f"{TICKETS}/{object_id}/comments"
    return path if comment_id is None else f"{path}/{comment_id}"


def field_ids(ticket_type: dict[str, Any]) -> dict[str, str]:
    """Field key -> field UUID."""
    return {f["key"]: f["id"] for f in ticket_type["fields"]}


# ---------------------------------------------------------------------------------------------------------------
# attachments: multipart/form-data bodies written by hand, so that a test controls every byte of them

FORM_BOUNDARY = "test-boundary-7d1f0c"
FORM_CONTENT_TYPE = f"multipart/form-data; boundary={FORM_BOUNDARY}"
# The first bytes of a PNG (its signature and an IHDR chunk's start): what a type detector recognises.
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def form_part_head(filename: str | None, content_type: str | None = None, *, field: str = "file") -> bytes:
    """The opening boundary and headers of one part, up to its first content byte."""
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"--{FORM_BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return (head + "\r\n").encode()


FORM_END = f"\r\n--{FORM_BOUNDARY}--\r\n".encode()


def form(filename: str | None, content: bytes, content_type: str | None = None, *, field: str = "file") -> bytes:
    """A multipart/form-data body with one part."""
    return form_part_head(filename, content_type, field=field) + content + FORM_END


async def upload(
    api: TenantApi,
    object_id: str,
    filename: str | None,
    content: bytes,
    content_type: str | None = None,
    **headers: str,
) -> httpx.Response:
    """POST one file to the ticket's attachments."""
    return await api.http.post(
        f"{TICKETS}/{object_id}/attachments",
        headers={**api.headers, "content-type": FORM_CONTENT_TYPE, **headers},
        content=form(filename, content, content_type),
    )


# ---------------------------------------------------------------------------------------------------------------
# the contract's response bodies

AUTHENTICATION_REQUIRED = {
    "error": True,
    "code": "AUTHENTICATION_REQUIRED",
    "message": "A Bearer access token is required",
    "status": 401,
}
INVALID_TOKEN = {
    "error": True,
    "code": "INVALID_TOKEN",
    "message": "The access token is invalid or has expired",
    "status": 401,
}
TENANT_NOT_FOUND = {"error": True, "message": "Tenant not found", "status": 404}
# The WWW-Authenticate header of each kind of 401.
BEARER_CHALLENGE = 'Bearer realm="ticketing"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="ticketing", error="invalid_token"'
INSUFFICIENT_SCOPE_CHALLENGE = 'Bearer realm="ticketing", error="insufficient_scope"'
ETAG_MISMATCH = {
    "error": True,
    "code": "ETAG_MISMATCH",
    "message": "Ticket might have been updated. Please check changes and resubmit",
    "status": 400,
}
UPDATED = {"success": True, "message": "ticket updated successfully", "status": 200}
ASSIGNED = {"success": True, "message": "ticket assigned successfully", "status": 200}
UNASSIGNED = {"success": True, "message": "ticket unassigned successfully", "status": 200}
PRECONDITION_FAILED = {
    "error": True,
    "code": "PRECONDITION_FAILED",
    "message": "The ticket has changed since the etag in If-Match was read; read it again and resubmit",
    "status": 412,
}
STATUS_CHANGED = {"success": True, "message": "ticket status changed successfully", "status": 200}


def named(state: dict[str, Any]) -> dict[str, Any]:
    """How a ticket, its list entry and a write's answer name the state they are in (`state`: the state as
    /ticket-state shows it)."""
    return {"state_id": state["id"], "state_name": state["name"], "state_type": state["state_type"]}


STATE_HAS_REFERENCES = {
    "error": True,
    "code": "STATE_HAS_REFERENCES",
    "message": "Can't delete, object has references.",
    "status": 409,
}
MALFORMED_JSON = {
    "error": True,
    "code": "INPUT_VALIDATION_FAILURE",
    "message": "Request body is not valid JSON",
    "status": 400,
    "validationResult": {"reason": {"body": "not valid JSON"}},
}
INVALID_DEFINITION = "Invalid ticket type definition"


def permission_failure(action: str) -> dict[str, Any]:
    """401 for a caller whose token lacks the role or the scope a route needs."""
    return {
        "error": True,
        "code": "USER_PERMISSION_FAILURE",
        "message": f"You do not have the permission to {action}",
        "status": 401,
    }


def invalid(message: str, reason: dict[str, str]) -> dict[str, Any]:
    return {
        "error": True,
        "code": "INPUT_VALIDATION_FAILURE",
        "message": message,
        "status": 400,
        "validationResult": {"reason": reason},
    }


def type_not_found(type_id: str) -> dict[str, Any]:
    return {"error": True, "message": f"Ticket type not found ({type_id})"}


def ticket_not_found(object_id: str) -> dict[str, Any]:
    return {"error": True, "message": f"Ticket not found ({object_id})"}


def timestamp(value: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return parsed


# ---------------------------------------------------------------------------------------------------------------
# ticket types, tickets, states

# The prefix of a type a test creates when it creates one; a test creating several names the others itself.
PROBE_PREFIX = "PROBE"


def new_field(key: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "key": key, "name": key.replace("_", " ").title(), "schema": schema, **extra}


def new_definition(*fields: dict[str, Any], prefix: str = PROBE_PREFIX, name: str = "Probe") -> dict[str, Any]:
    if not fields:
        fields = (new_field("title", {"type": "string", "maxLength": 100}, required=True),)
    return {
        "name": name,
        "description": f"{name} type of a test",
        "prefix": prefix,
        "fields": list(fields),
    }


async def create_type(http: httpx.AsyncClient, admin: TenantApi, definition: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(TYPES, json=definition, headers=admin.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_ticket(api: TenantApi, type_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Create a ticket (asserting 201); returns the create response's body."""
    response = await api.create(type_id, data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_states(api: TenantApi) -> list[dict[str, Any]]:
    response = await api.http.get(STATES, headers=api.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def by_name(api: TenantApi, name: str) -> dict[str, Any]:
    return next(state for state in await list_states(api) if state["name"] == name)


def editable(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A state's PUT body: its editable members, with `changes`."""
    keys = ("name", "state_type", "next_state_id", "ignore_escalation", "default_create", "default_follow_up")
    return {**{key: state[key] for key in keys}, "note": state["note"], "active": state["active"], **changes}


# ---------------------------------------------------------------------------------------------------------------
# the service under test: a real server on loopback


def find_litestar(app: Any) -> Litestar:
    """The Litestar application inside the ASGI middleware that create_app wraps it in."""
    while not isinstance(app, Litestar):
        app = app.app
    return app


class LiveServer:
    """The real ASGI app under uvicorn on a loopback port, in the test session's event loop."""

    # Every server running now: a new tenant must be known to each before a test uses it (see TenantFactory).
    running: ClassVar[list[LiveServer]] = []

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        # The same listening socket `python -m app serve` uses (TCP_NODELAY set), on a free loopback port.
        self.socket = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(
            # Idle keep-alive connections live longer than uvicorn's default 5 s: a module's client may sit idle
            # while the next test's tenants are created, and a connection closed under it reads as a reset.
            uvicorn.Config(
                self.app,
                lifespan="on",
                log_config=None,
                access_log=False,
                loop="none",
                timeout_keep_alive=60,
                http=http_protocol(settings.request_header_timeout_seconds, settings.request_body_timeout_seconds),
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        LiveServer.running.append(self)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self in LiveServer.running:
            LiveServer.running.remove(self)
        self.server.should_exit = True
        if self._task is not None:
            await self._task
        self.socket.close()


def session_redis_url(workspace: Path) -> str:
    """TEST_REDIS_URL, or the session's private Redis server (started by tests/conftest.py)."""
    return os.environ.get("TEST_REDIS_URL") or PrivateRedis(workspace / "redis").url


def make_settings(database_url: str, workspace: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": workspace / "data",
        "tenants_dir": workspace / "tenants",
        "jwks_min_refresh_seconds": 0.3,
        "db_pool_min": 1,
        "db_pool_max": 8,
        "log_level": "WARNING",
        # Webhooks to the tests' receivers on loopback, retried within milliseconds.
        "webhook_allow_loopback": True,
        "webhook_poll_interval_seconds": 0.05,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.4,
        "webhook_timeout_seconds": 5.0,
        "redis_url": session_redis_url(workspace),
        # The suite hashes hundreds of passwords; the timing test of sign-in asks for the real profile.
        "password_hash_profile": "CHEAPEST",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# a browser without network: Debian's Chromium, headless, reaching nothing but loopback

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_TIMEOUT = 90.0  # real seconds for one page; rendering itself runs on virtual time
# Virtual milliseconds the page may run after its last network load: Swagger UI renders within a few hundred.
RENDER_BUDGET_MS = 20_000


@dataclass(frozen=True)
class PageVisit:
    dom: str  # the document as rendered, scripts run
    page_requests: list[str]  # every URL the page itself asked for (scripts, styles, images, fonts, fetches)


def _chromium_command(url: str, workdir: Path, net_log: Path, closed_port: int, *mode: str) -> list[str]:
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"{CHROMIUM} is missing: `make test` installs it, or run: apt-get install -y chromium")
    return [
        str(CHROMIUM),
        "--headless",
        *(["--no-sandbox"] if os.geteuid() == 0 else []),
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={workdir / 'profile'}",
        # No network: host names resolve to nothing, and anything not on loopback goes to a proxy on a closed port
        # (Chromium sends loopback directly, around the proxy).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server=http://127.0.0.1:{closed_port}",
        f"--log-net-log={net_log}",
        f"--virtual-time-budget={RENDER_BUDGET_MS}",
        *mode,
        url,
    ]


async def _run_chromium(url: str, workdir: Path, *mode: str) -> tuple[bytes, list[str]]:
    """Run Chromium once on `url`; its standard output and the URLs the page requested (from Chromium's own
    network log: requests a document initiated, which leaves out the browser's own service calls)."""
    net_log = _fresh_net_log(workdir)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
        command = _chromium_command(url, workdir, net_log, closed.getsockname()[1], *mode)
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "HOME": str(workdir)},
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), BROWSER_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"Chromium did not finish {url} in {BROWSER_TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        raise AssertionError(f"Chromium exited with {process.returncode} on {url}: {stderr.decode()[-2000:]}")
    return stdout, page_requests(net_log)


def _fresh_net_log(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir / f"net-log-{uuid.uuid4().hex}.json"


def page_requests(net_log: Path) -> list[str]:
    """The URLs of the requests a document initiated, in order. Chromium's own calls (sign-in, network time,
    suggestions) and the navigation itself carry no initiator origin."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        str(event["params"]["url"])
        for event in log["events"]
        if event["type"] == start_job
        and "url" in event.get("params", {})
        and event["params"].get("initiator", "not an origin") != "not an origin"
    ]


async def visit_offline(url: str, workdir: Path) -> PageVisit:
    """The page at `url` rendered by headless Chromium with no network but loopback."""
    dom, requested = await _run_chromium(url, workdir, "--dump-dom")
    return PageVisit(dom.decode(), requested)


async def screenshot_offline(url: str, workdir: Path, png: Path, *, width: int = 1280, height: int = 2000) -> list[str]:
    """Save a PNG of the page at `url` (an absolute path) as headless Chromium renders it with no network but
    loopback; the URLs the page requested."""
    _, requested = await _run_chromium(
        url, workdir, f"--screenshot={png}", f"--window-size={width},{height}", "--hide-scrollbars"
    )
    return requested


# ---------------------------------------------------------------------------------------------------------------
# fresh tenants

KNOWN_TIMEOUT = 10.0  # seconds for a running server to learn of a new tenant
SHARED_TENANTS = "tenants"  # in the workspace: a file for every tenant the factory applied (see TenantFactory)


@dataclass
class TenantFactory:
    """Makes tenants no test has seen before: a fresh UUID, slug, realms with their own issuers and key pairs, the
    seed states and the template ticket types.

    Tenant files are written into a new folder, loaded the way the service loads them and applied the way `tenants
    sync` applies them (apply_tenants: rows, states, template types, and a notification on which every running
    server reloads its tenants), but leaving the session's other tenants alone; then the factory waits until each
    running server knows them. Applied tenants' files are also copied into `workspace/tenants` (SHARED_TENANTS),
    the folder `python -m app serve` syncs at start-up in the tests that start it: that sync disables every tenant
    without a file there. `fresh` hands out
    such tenants one at a time, each to one caller only, from batches applied together: one sync, one notification
    and one reload per batch instead of per tenant, which is what makes a tenant per test affordable."""

    database_url: str
    workspace: Path
    first_batch: int = 4
    largest_batch: int = 32
    _stock: dict[str, list[TenantSpec]] = field(default_factory=dict)
    _batch: dict[str, int] = field(default_factory=dict)

    def spec(
        self,
        name: str,
        *,
        realms: Sequence[tuple[str, str]] = (("main", "ES256"),),
        roles: dict[str, Any] | None = None,
        ticket_types: list[str] | None = None,
        attachments: dict[str, Any] | None = None,
        rate_limits: dict[str, Any] | None = None,
        builtin_realm: bool = False,
    ) -> TenantSpec:
        """A tenant nobody has used, not yet written or applied. Its realms are named `<name>-<realm>`, one per
        (realm, algorithm) pair, each with a new key pair; only the slug and the issuers carry the tenant's UUID, so
        that they are unique in the database. With `builtin_realm`, a last realm is builtin, named after the slug
        (a builtin realm's name is unique across tenants)."""
        tenant_id = uuid.uuid4()
        slug = f"{name}-{tenant_id.hex[:12]}"
        builtin = [RealmSpec(slug, f"https://sso.{slug}.test/realms/{slug}", SigningKey("ES256"), builtin=True)]
        return TenantSpec(
            id=tenant_id,
            slug=slug,
            realms=[
                *(
                    RealmSpec(
                        f"{name}-{realm}", f"https://idp.{slug}.test/realms/{name}-{realm}", SigningKey(algorithm)
                    )
                    for realm, algorithm in realms
                ),
                *(builtin if builtin_realm else []),
            ],
            roles=copy.deepcopy(ALPHA_ROLES if roles is None else roles),
            ticket_types=list(TEMPLATE_TYPES if ticket_types is None else ticket_types),
            attachments=attachments,
            rate_limits=copy.deepcopy(TEST_RATE_LIMITS if rate_limits is None else rate_limits),
        )

    def write(self, *tenants: TenantSpec) -> Path:
        """Write the tenants' files into a new folder (named after the first); returns the folder."""
        directory = write_tenants(self.workspace / "fresh-tenants" / tenants[0].slug, list(tenants))
        for tenant in tenants:
            tenant.directory = directory
        return directory

    def configs(self, *tenants: TenantSpec) -> list[TenantConfig]:
        """The tenants' files, written and loaded as the service loads them."""
        return load_tenant_files(self.write(*tenants), self.workspace / "data")

    async def apply(self, *tenants: TenantSpec) -> None:
        """Apply the tenants and wait until every running server knows them."""
        await apply_tenants(self.database_url, self.configs(*tenants), disable_missing=False)
        write_tenants(self.workspace / SHARED_TENANTS, list(tenants))
        await self.known(tenants[-1])

    async def known(self, tenant: TenantSpec) -> None:
        """Wait until every running server knows the tenant (applied, by whatever means). A reload reads every
        tenant, so a server knowing the last of a batch knows them all."""
        for server in list(LiveServer.running):
            await wait_until_known(server.url, tenant)

    async def fresh(self, name: str, **options: Any) -> TenantSpec:
        """A new tenant (see `spec` for the options), applied and known to every running server."""
        kind = json.dumps([name, options], sort_keys=True)
        stock = self._stock.setdefault(kind, [])
        if not stock:
            size = self._batch.get(kind, self.first_batch)
            self._batch[kind] = min(2 * size, self.largest_batch)
            batch = [self.spec(name, **options) for _ in range(size)]
            await self.apply(*batch)
            stock.extend(batch)
        return stock.pop(0)


async def wait_until_known(url: str, tenant: TenantSpec) -> None:
    """Poll GET /me with a token of the tenant until the server at `url` answers 200 (within KNOWN_TIMEOUT). The
    200 counts against the rate limit of its subject, which no test uses."""
    headers = auth_headers(tenant, token(tenant, roles=[], scope="", subject="tenant-factory-probe"))
    deadline = time.monotonic() + KNOWN_TIMEOUT
    async with httpx.AsyncClient(base_url=url, timeout=KNOWN_TIMEOUT) as http:
        while True:
            response = await http.get(ME, headers=headers)
            if response.status_code == 200:
                return
            assert time.monotonic() < deadline, f"{url} does not know tenant {tenant.slug}: {response.text}"
            await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------------------------------------------
# races that really meet in PostgreSQL

POOL_MAX = 40  # connections of a racing server's pool: enough that racing requests each hold their own
GATE_TIMEOUT = 30.0  # seconds for the racers to pile up behind a held lock
LOCK_TICKETS = "SELECT 1 FROM ticket WHERE tenant_id = $1 AND id = ANY($2::uuid[]) FOR UPDATE"
# Backends of this database waiting for a lock (the cluster is the session's own).
WAITING = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"


async def gated(
    db: asyncpg.Pool, lock_sql: str, lock_args: tuple[Any, ...], waiters: int, racers: Callable[[], Awaitable[T]]
) -> T:
    """Run `racers()` while this test holds a row lock (`lock_sql`, rolled back afterwards), until `waiters` server
    statements are queued behind it (or behind each other), then let go: the racing statements really meet in
    PostgreSQL instead of trickling in one by one from the single-threaded server."""
    task: asyncio.Future[T] | None = None
    try:
        async with db.acquire() as conn:
            gate = conn.transaction()
            await gate.start()
            try:
                await conn.execute(lock_sql, *lock_args)
                task = asyncio.ensure_future(racers())
                deadline = time.monotonic() + GATE_TIMEOUT
                while (waiting := await db.fetchval(WAITING)) < waiters:
                    assert not task.done(), "the racers finished while the gate was closed"
                    assert time.monotonic() < deadline, f"only {waiting} of {waiters} statements queued at the gate"
                    await asyncio.sleep(0.01)
            finally:
                await gate.rollback()
    finally:
        if task is not None:
            await asyncio.wait([task])
    assert task is not None
    return task.result()


# ---------------------------------------------------------------------------------------------------------------
# `python -m app` as a child process

START_TIMEOUT = 30.0  # until /health/live answers
STOP_TIMEOUT = 20.0  # after SIGINT
# The environment variables the service reads: each setting's name in upper case.
APP_VARIABLES = frozenset(name.upper() for name in Settings.__struct_fields__)


def cli_env(**variables: str | None) -> dict[str, str]:
    """os.environ without any of the app's settings (so the host's own cannot leak in), plus `variables`;
    None removes a variable."""
    env = {k: v for k, v in os.environ.items() if k not in APP_VARIABLES}
    env["LOG_LEVEL"] = "INFO"
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """`python -m app serve` as a child process, its output in files (a full pipe would block it)."""

    def __init__(self, env: dict[str, str], port: int, log_dir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.stdout_path = log_dir / f"serve-{port}.stdout"
        self.stderr_path = log_dir / f"serve-{port}.stderr"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=err
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_live(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"serve exited with {code} before answering:\n{self.stderr}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not answer within {START_TIMEOUT} s:\n{self.stderr}")
            time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGINT, then wait; kill on timeout. Returns the exit code, or None if it had to be killed."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            return None

    def __enter__(self) -> Serve:
        try:
            self.wait_live()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def json_log(stderr: str) -> list[dict[str, Any]]:
    """serve logs one JSON object per stderr line; anything else (a traceback, a print) fails here."""
    records = []
    for line in stderr.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"stderr line is not a JSON log record: {line!r}\n{stderr}")
    return records


# ---------------------------------------------------------------------------------------------------------------
# tenant files for the loader's unit tests (never applied to a database, so a fixed id is harmless)

GOOD_TENANT_ID = "11111111-1111-4111-8111-111111111111"
GOOD_TENANT_ISSUER = "https://idp.alpha.test/realms/alpha-main"
GOOD_TENANT_URL_KEYS = 'keys = { jwks_url = "https://idp.alpha.test/jwks/alpha-main" }'
# A valid tenant file; each bad case of the loader's tests changes exactly one thing in it.
GOOD_TENANT_FILE = f"""\
id = "{GOOD_TENANT_ID}"
slug = "alpha"
name = "Alpha Ltd"

[roles]
read = ["viewer", "agent", "admin"]
write = ["agent", "admin"]
admin = ["admin"]
support = "support"

[[realms]]
name = "alpha-main"
issuer = "{GOOD_TENANT_ISSUER}"
audience = "ticketing-api"
{GOOD_TENANT_URL_KEYS}
"""


def write_files(directory: Path, contents: dict[str, str]) -> Path:
    """Write each named text into `directory` (created if need be); returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


async def assert_numbered_events(db: asyncpg.Pool, tenant_id: uuid.UUID, ticket_ids: Sequence[str]) -> None:
    """Each ticket's events, in the order they were written, carry the sequence numbers 1..n without a gap or a
    repeat, and the ticket's event_sequence is n: numbering under the ticket's row lock held up under the race."""
    ids = [uuid.UUID(ticket_id) for ticket_id in ticket_ids]
    numbered: dict[uuid.UUID, list[int]] = {ticket_id: [] for ticket_id in ids}
    for row in await db.fetch(
        "SELECT ticket_id, sequence FROM ticket_event WHERE tenant_id = $1 AND ticket_id = ANY($2::uuid[]) ORDER BY id",
        tenant_id,
        ids,
    ):
        numbered[row["ticket_id"]].append(row["sequence"])
    last = dict(
        await db.fetch(
            "SELECT id, event_sequence FROM ticket WHERE tenant_id = $1 AND id = ANY($2::uuid[])", tenant_id, ids
        )
    )
    for ticket_id, sequences in numbered.items():
        assert sequences == list(range(1, len(sequences) + 1)), (ticket_id, sequences)
        assert last[ticket_id] == len(sequences), (ticket_id, last[ticket_id], len(sequences))


# ---------------------------------------------------------------------------------------------------------------
# a database of a test's own


@contextlib.asynccontextmanager
async def own_database(database_url: str, prefix: str) -> AsyncIterator[str]:
    """A new database on the session's cluster with every migration applied, dropped afterwards. For what must not
    happen to the shared database: a full `tenants sync` disables every tenant it is not given."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(urlunsplit(urlsplit(database_url)._replace(path="/postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            dsn = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
            previous = piccolo_conf.DB.config.get("dsn")
            engine.configure(dsn)
            try:
                await engine.migrate()
            finally:
                if previous is None:
                    piccolo_conf.DB.config.pop("dsn", None)
                else:
                    engine.configure(previous)
            yield dsn
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# --- the seeds' v1 surface (issue 13) -------------------------------------------------------------------------------

V1 = "/api/v1"
# The public API documents the product was specified from (see their README), copied verbatim from ../shared/seeds so
# that a clone anywhere has them; v1 tests replay their examples.
SEEDS = PROJECT_ROOT / "tests" / "seeds"


@dataclass(frozen=True)
class SeedExample:
    heading: str  # the nearest non-empty line above the JSON, e.g. "Error Response (404)" or "# HTTP-Code 200 Ok"
    value: Any


# Seed 004 writes its examples as JSON with an elision or two: `// More tickets...` lines, `"data": [...]`, and the
# trailing commas they leave. Read as the JSON they stand for: the comment gone, the elided list empty.
_SEED_COMMENT = re.compile(r"^\s*//.*\n", re.MULTILINE)
_SEED_ELISION = re.compile(r"\[\.\.\.\]")
_SEED_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def seed_text(name: str) -> str:
    text = (SEEDS / name).read_text(encoding="utf-8")
    return _SEED_TRAILING_COMMA.sub(r"\1", _SEED_ELISION.sub("[]", _SEED_COMMENT.sub("", text)))


def seed_examples(name: str) -> list[SeedExample]:
    """Every JSON document of a seed file that starts a line (request bodies and responses; curl's inline copies
    of the bodies are left out), in the order they appear, each with the line that introduces it."""
    text = seed_text(name)
    decoder = json.JSONDecoder()
    examples: list[SeedExample] = []
    lines = text.splitlines(keepends=True)
    offset, index = 0, 0
    heading = ""
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if stripped.startswith(("{", "[")):
            value, end = decoder.raw_decode(text, offset + len(line) - len(stripped))
            examples.append(SeedExample(heading, value))
            while index < len(lines) and offset + len(lines[index]) <= end:
                offset += len(lines[index])
                index += 1
            continue
        if stripped.strip():
            heading = stripped.strip()
        offset += len(line)
        index += 1
    return examples


def seed_example(name: str, heading: str) -> Any:
    """The one JSON document of the seed introduced by `heading` (exactly)."""
    (found,) = [example.value for example in seed_examples(name) if example.heading == heading]
    return found


def v1_headers(bearer: str | None, **extra: str) -> dict[str, str]:
    """What a v1 client sends: the token only (tenant and realm come from it)."""
    headers = {"accept": "application/json", **extra}
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return headers
