"""Realm keys served over HTTP by a real local JWKS server, tenant reload without restart, and the token cache."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import jwt
from tests.support import (
    ME,
    LiveServer,
    RealmSpec,
    SigningKey,
    TenantFactory,
    TenantSpec,
    auth_headers,
    claims_for,
    load_tenant_files,
    make_settings,
    sign,
    sync_tenants,
)


class JwksServer:
    """A stand-in identity provider: serves whatever key set the test puts in `keys`, and counts fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/realms/gamma/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


async def _wait_for_status(client: httpx.AsyncClient, request_headers: dict[str, str], status: int) -> int:
    deadline = time.monotonic() + 5
    while True:
        response = await client.get(ME, headers=request_headers)
        if response.status_code == status or time.monotonic() > deadline:
            return response.status_code
        await asyncio.sleep(0.05)


REFRESH_SECONDS = 1.0


@pytest.fixture(scope="module")
async def idp_client(migrated: str, workspace: Path) -> Any:
    settings = make_settings(migrated, workspace, jwks_min_refresh_seconds=REFRESH_SECONDS)
    async with LiveServer(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        yield client


async def test_jwks_url_realm_synced_live_and_key_rotation_picked_up(
    idp_client: httpx.AsyncClient,
    tenant_factory: TenantFactory,
    workspace: Path,
    jwks_server: JwksServer,
    database_url: str,
) -> None:
    client = idp_client
    first, second = SigningKey("RS256"), SigningKey("RS256")
    jwks_server.keys = [first.jwk]
    gamma = tenant_factory.spec("gamma")
    issuer = gamma.realms[0].issuer.replace("gamma-main", "gamma-sso")
    realm = RealmSpec("gamma-sso", issuer, first, jwks_url=jwks_server.url)
    gamma.realms = [realm]
    directory = tenant_factory.write(gamma)

    # The running server knows nothing of gamma yet.
    first_token = sign(claims_for(gamma, realm), first)
    assert (await client.get(ME, headers=auth_headers(gamma, first_token))).status_code == 401

    # `tenants sync` from another process: the running server reloads on the notification, no restart.
    assert await sync_tenants(database_url, load_tenant_files(directory, workspace / "data")) == [gamma.slug]
    assert await _wait_for_status(client, auth_headers(gamma, first_token), 200) == 200
    await tenant_factory.known(gamma)  # every other running server has reloaded too
    fetches_after_first_key = jwks_server.fetches
    assert fetches_after_first_key >= 1

    # The IdP rotates: a new kid appears and the old one is withdrawn. A token with the new kid is accepted
    # after one refetch, without a restart.
    jwks_server.keys = [second.jwk]
    await asyncio.sleep(REFRESH_SECONDS + 0.05)
    second_token = sign(claims_for(gamma, realm), second)
    response = await client.get(ME, headers=auth_headers(gamma, second_token))
    assert response.status_code == 200, response.text
    assert jwks_server.fetches == fetches_after_first_key + 1
    # The withdrawn key's token no longer works, although it was verified (and cached) before.
    assert (await client.get(ME, headers=auth_headers(gamma, first_token))).status_code == 401

    # A flood of forged kids costs at most one fetch per refresh interval, not one per request.
    forged = [sign(claims_for(gamma, realm), second, kid=f"forged-{n}") for n in range(20)]
    await asyncio.sleep(REFRESH_SECONDS + 0.05)
    before_flood = jwks_server.fetches
    started = time.monotonic()
    for token in forged:
        assert (await client.get(ME, headers=auth_headers(gamma, token))).status_code == 401
    assert time.monotonic() - started < REFRESH_SECONDS, "flood too slow to prove the rate limit"
    assert jwks_server.fetches - before_flood == 1


async def test_sync_is_idempotent(
    tenant_factory: TenantFactory, alpha: TenantSpec, workspace: Path, database_url: str
) -> None:
    # alpha's own tenant file, applied already: syncing it again changes nothing, however often.
    assert alpha.directory is not None
    configs = [c for c in load_tenant_files(alpha.directory, workspace / "data") if c.id == alpha.id]
    assert await sync_tenants(database_url, configs) == []
    assert await sync_tenants(database_url, configs) == []


@pytest.fixture(scope="module")
async def strict_server(migrated: str, workspace: Path) -> Any:
    async with LiveServer(make_settings(migrated, workspace, jwt_leeway_seconds=0)) as live:
        yield live


async def test_repeated_token_is_verified_once(
    strict_server: LiveServer, alpha: TenantSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real_verify = jwt.verify

    def counting_verify(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(jwt, "verify", counting_verify)
    realm = alpha.realms[0]
    token = sign(claims_for(alpha, realm), realm.key)
    async with httpx.AsyncClient(base_url=strict_server.url) as client:
        statuses = [(await client.get(ME, headers=auth_headers(alpha, token))).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert calls == 1


async def test_cached_token_stops_working_when_it_expires(strict_server: LiveServer, alpha: TenantSpec) -> None:
    realm = alpha.realms[0]
    expires_at = int(time.time()) + 2  # at least a second away: the first call is inside the lifetime
    token = sign(claims_for(alpha, realm, exp=expires_at), realm.key)
    async with httpx.AsyncClient(base_url=strict_server.url) as client:
        assert (await client.get(ME, headers=auth_headers(alpha, token))).status_code == 200
        # python-jose compares exp with whole seconds, so a token is refused from the second after exp.
        await asyncio.sleep(expires_at - time.time() + 1.1)
        assert (await client.get(ME, headers=auth_headers(alpha, token))).status_code == 401
