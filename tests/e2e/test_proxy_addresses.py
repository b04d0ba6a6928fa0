"""The client address behind a proxy (issue 12's sign-in throttle and address rate limit count it): with
FORWARDED_ALLOW_IPS naming the proxy, the address X-Forwarded-For gives; without it, the connection's, whatever the
header says (from an untrusted client it is a lie)."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx

from tests.support import LOGIN, Serve, TenantFactory, cli_env, free_port


async def failed_sign_in_addresses(
    database_url: str, workspace: Path, tmp_path: Path, tenant_factory: TenantFactory, **settings: str
) -> set[str]:
    """The addresses a failed sign-in through a fresh server was counted under, for X-Forwarded-For 203.0.113.7."""
    tenant = await tenant_factory.fresh(f"proxied-{uuid.uuid4().hex[:6]}", builtin_realm=True)
    port = free_port()
    env = cli_env(
        DATABASE_URL=database_url,
        TENANTS_DIR=str(workspace / "tenants"),
        DATA_DIR=str(workspace / "data"),
        PORT=str(port),
        RATE_LIMITS_ENABLED="false",
        **settings,
    )
    with Serve(env, port, tmp_path) as server:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{server.url}{LOGIN}",
                json={"email": "nobody@example.com", "password": "not a password"},
                headers={"x-tenantid": str(tenant.id), "x-forwarded-for": "203.0.113.7"},
            )
    assert response.status_code == 401, response.text
    connection = await asyncpg.connect(database_url)
    try:
        keys = await connection.fetch(
            "SELECT throttle_key FROM login_failure WHERE tenant_id = $1 AND throttle_key LIKE 'address:%'",
            tenant.id,
        )
    finally:
        await connection.close()
    return {row["throttle_key"] for row in keys}


async def test_a_trusted_proxy_gives_the_client_address(
    database_url: str, workspace: Path, tmp_path: Path, tenant_factory: TenantFactory
) -> None:
    found = await failed_sign_in_addresses(
        database_url, workspace, tmp_path, tenant_factory, FORWARDED_ALLOW_IPS="127.0.0.1"
    )
    assert found == {"address:203.0.113.7"}


async def test_without_a_trusted_proxy_the_header_is_ignored(
    database_url: str, workspace: Path, tmp_path: Path, tenant_factory: TenantFactory
) -> None:
    found = await failed_sign_in_addresses(database_url, workspace, tmp_path, tenant_factory)
    assert found == {"address:127.0.0.1"}
