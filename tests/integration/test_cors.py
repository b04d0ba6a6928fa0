"""CORS: a tenant's `[cors] allowed_origins` let browser pages on those origins call the API for that tenant.

A preflight names no tenant (it carries no token and no x-tenantid), so it passes for an origin any enabled tenant
allows; an actual response, errors included, carries Access-Control-Allow-Origin only when the tenant named in its
x-tenantid allows the request's Origin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from app.tenancy.cors import MAX_AGE_SECONDS
from tests.support import (
    API,
    AUTHENTICATION_REQUIRED,
    ME,
    TENANT_NOT_FOUND,
    TICKETS,
    TenantFactory,
    TenantSpec,
    auth_headers,
    sync_tenants,
    token,
)

UPDATE = f"{API}/ticket/REQ-0001/update"
CATALOG = {"type": "template", "module": "ticketing"}
STRANGER = "https://stranger.example"
RELOAD_TIMEOUT = 10.0  # seconds for the server to hear of a sync
EXPOSED = {
    "etag",
    "idempotent-replayed",
    "retry-after",
    "www-authenticate",
    "allow",
    "x-request-id",
    "location",
    "content-disposition",
    "content-range",
    "accept-ranges",
}


@dataclass
class Pair:
    """Two tenants, each allowing one origin of its own."""

    a: TenantSpec
    b: TenantSpec

    @property
    def a_origin(self) -> str:
        return self.a.allowed_origins[0]

    @property
    def b_origin(self) -> str:
        return self.b.allowed_origins[0]


async def tenant_with_origin(factory: TenantFactory, name: str) -> TenantSpec:
    tenant = factory.spec(name)
    # Unique to the tenant: a preflight passes for an origin that any tenant of the session allows.
    tenant.allowed_origins = [f"https://app.{tenant.slug}.test", f"http://localhost:{3000 + len(name)}"]
    await factory.apply(tenant)
    return tenant


@pytest.fixture(scope="module")
async def pair(tenant_factory: TenantFactory) -> Pair:
    return Pair(await tenant_with_origin(tenant_factory, "cors-a"), await tenant_with_origin(tenant_factory, "cors-b"))


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-")}


def preflight(origin: str, method: str = "PATCH") -> dict[str, str]:
    """What a browser sends before a cross-origin call: no token, no x-tenantid, only the names of the headers."""
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": "authorization,content-type,idempotency-key,realmname,x-tenantid",
    }


# --- preflights ------------------------------------------------------------------------------------------------


async def test_a_preflight_from_an_allowed_origin_is_answered_with_the_cors_headers(
    client: httpx.AsyncClient, pair: Pair
) -> None:
    response = await client.options(UPDATE, params=CATALOG, headers=preflight(pair.a_origin))

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert set(response.headers["allow"].split(", ")) == {"PATCH", "OPTIONS"}
    assert response.headers["vary"] == "Origin"
    cors = cors_headers(response)
    assert set(cors) == {
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    }
    assert cors["access-control-allow-origin"] == pair.a_origin
    assert set(cors["access-control-allow-methods"].split(", ")) == {"PATCH", "OPTIONS"}
    assert set(cors["access-control-allow-headers"].split(", ")) == {
        "authorization",
        "content-type",
        "x-tenantid",
        "realmname",
        "issupportrequest",
        "idempotency-key",
        "if-none-match",
        "x-request-id",
        "range",
        "if-range",
    }
    assert cors["access-control-max-age"] == MAX_AGE_SECONDS.decode()
    # B's second origin passes too: the preflight names no tenant.
    other = await client.options(ME, headers=preflight(pair.b.allowed_origins[1], "GET"))
    assert other.headers["access-control-allow-origin"] == pair.b.allowed_origins[1]
    assert set(other.headers["access-control-allow-methods"].split(", ")) == {"GET", "OPTIONS"}


@pytest.mark.parametrize(
    "origin",
    [STRANGER, "null", "https://app.cors-a.test", "HTTPS://APP.EXAMPLE"],
    ids=["stranger", "null", "lookalike", "uppercase"],
)
async def test_a_preflight_from_any_other_origin_is_the_plain_204(client: httpx.AsyncClient, origin: str) -> None:
    response = await client.options(UPDATE, params=CATALOG, headers=preflight(origin))

    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) == {"PATCH", "OPTIONS"}
    assert cors_headers(response) == {}


async def test_a_preflight_to_an_unknown_path_is_a_404_without_cors_headers(
    client: httpx.AsyncClient, pair: Pair
) -> None:
    response = await client.options(f"{API}/no-such-route", headers=preflight(pair.a_origin))

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert cors_headers(response) == {}


# --- actual requests -------------------------------------------------------------------------------------------


def assert_allowed(response: httpx.Response, origin: str) -> None:
    cors = cors_headers(response)
    assert cors.get("access-control-allow-origin") == origin, (response.status_code, dict(response.headers))
    assert set(cors) == {"access-control-allow-origin", "access-control-expose-headers"}
    assert set(cors["access-control-expose-headers"].split(", ")) == EXPOSED
    assert response.headers["vary"] == "Origin"


def assert_not_allowed(response: httpx.Response) -> None:
    assert cors_headers(response) == {}, (response.status_code, dict(response.headers))
    assert response.headers["vary"] == "Origin"  # another Origin could have been allowed: caches must know


async def test_a_request_from_its_tenants_origin_is_allowed(client: httpx.AsyncClient, pair: Pair) -> None:
    headers = auth_headers(pair.a, token(pair.a), origin=pair.a_origin)

    response = await client.get(ME, headers=headers)

    assert response.status_code == 200, response.text
    assert_allowed(response, pair.a_origin)


async def test_another_tenants_token_from_the_origin_gets_no_cors_headers(
    client: httpx.AsyncClient, pair: Pair
) -> None:
    # B's own request from A's origin: B does not allow it, so the page cannot read B's answer.
    response = await client.get(ME, headers=auth_headers(pair.b, token(pair.b), origin=pair.a_origin))
    assert response.status_code == 200
    assert_not_allowed(response)
    # A's request from B's origin, likewise.
    response = await client.get(ME, headers=auth_headers(pair.a, token(pair.a), origin=pair.b_origin))
    assert response.status_code == 200
    assert_not_allowed(response)
    # B's token claiming A: "Tenant not found", readable by A's page (A allows it) and revealing nothing of B.
    claimed = auth_headers(pair.b, token(pair.b), origin=pair.a_origin, **{"x-tenantid": str(pair.a.id)})
    response = await client.get(ME, headers=claimed)
    assert (response.status_code, response.json()) == (404, TENANT_NOT_FOUND)
    assert_allowed(response, pair.a_origin)


async def test_error_responses_carry_the_cors_headers_too(client: httpx.AsyncClient, pair: Pair) -> None:
    a_page = {"origin": pair.a_origin, "x-tenantid": str(pair.a.id), "realmname": pair.a.realms[0].name}

    no_token = await client.get(ME, headers=a_page)
    assert (no_token.status_code, no_token.json()) == (401, AUTHENTICATION_REQUIRED)
    assert_allowed(no_token, pair.a_origin)

    headers = auth_headers(pair.a, token(pair.a), origin=pair.a_origin)
    missing = await client.get(f"{TICKETS}/REQ-9999", headers=headers)
    assert missing.status_code == 404
    assert_allowed(missing, pair.a_origin)

    unknown_route = await client.get(f"{API}/no-such-route", headers=headers)
    assert unknown_route.status_code == 404
    assert_allowed(unknown_route, pair.a_origin)

    too_large = await client.post(TICKETS, params=CATALOG, headers=headers, content=b"x" * (2 * 1024 * 1024))
    assert too_large.status_code == 413
    assert_allowed(too_large, pair.a_origin)


async def test_a_request_without_origin_gets_no_cors_headers(client: httpx.AsyncClient, pair: Pair) -> None:
    response = await client.get(ME, headers=auth_headers(pair.a, token(pair.a)))
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert "vary" not in response.headers

    options = await client.options(ME)
    assert options.status_code == 204
    assert cors_headers(options) == {}


async def test_a_disabled_tenants_origins_are_no_longer_allowed(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, database_url: str
) -> None:
    leaving = await tenant_with_origin(tenant_factory, "cors-leaving")
    origin = leaving.allowed_origins[0]
    assert (await client.options(ME, headers=preflight(origin, "GET"))).headers["access-control-allow-origin"] == origin

    leaving.disabled = True
    assert await sync_tenants(database_url, tenant_factory.configs(leaving)) == [leaving.slug]

    refused = await until(lambda: client.options(ME, headers=preflight(origin, "GET")), lambda r: not cors_headers(r))
    assert refused.status_code == 204
    response = await client.get(ME, headers=auth_headers(leaving, token(leaving), origin=origin))
    assert (response.status_code, response.json()) == (404, TENANT_NOT_FOUND)
    assert_not_allowed(response)


async def until(
    call: Callable[[], Awaitable[httpx.Response]], done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """Repeat `call` until `done(response)` (a running server reloads its tenants on a notification)."""
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while not done(response := await call()):
        assert time.monotonic() < deadline, dict(response.headers)
        await asyncio.sleep(0.02)
    return response
