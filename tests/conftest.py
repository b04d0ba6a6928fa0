"""Shared fixtures: one throwaway PostgreSQL cluster and one private Redis server per test session (schema from the
real migrations), the service running as a real HTTP server on loopback, and fresh tenants for every test that asks
for one.

`alpha` and `beta` are new tenants for each test: their own UUIDs, slugs, realms, issuers and key pairs, seeded
with the default ticket states and the REQ and FAC template types. They differ in their role names (see
ALPHA_ROLES and BETA_ROLES in tests/support.py), so each is the other's stranger. A test needing other shapes asks
`tenant_factory` directly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.bootstrap import apply_tenants
from app.db import engine
from app.db.cluster import EmbeddedCluster
from app.ratelimit.server import PrivateRedis
from tests.support import (
    BETA_ROLES,
    SHARED_TENANTS,
    LiveServer,
    TenantFactory,
    TenantSpec,
    load_tenant_files,
    make_settings,
    write_tenants,
)


@pytest.fixture(scope="session")
def workspace() -> Iterator[Path]:
    # Not pytest's tmp_path: its parent folder is private to root, and the cluster runs as `postgres`.
    path = Path(tempfile.mkdtemp(prefix="ticketing-test-"))
    path.chmod(0o755)
    yield path
    # A private Redis server runs as a daemon: one left by a `serve` a test killed would outlive its folder.
    for pid_file in path.glob("**/redis/redis.pid"):
        PrivateRedis(pid_file.parent).stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def redis_url(workspace: Path) -> Iterator[str]:
    """The Redis the servers count rate limits in: TEST_REDIS_URL, or a private server in the workspace (the URL
    tests.support.make_settings gives every server)."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    with PrivateRedis(workspace / "redis").in_use() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(workspace: Path) -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    cluster = EmbeddedCluster(workspace / "postgres", throwaway=True)
    cluster.start()
    try:
        yield cluster.dsn()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
async def migrated(database_url: str) -> str:
    engine.configure(database_url)
    await engine.migrate()
    return database_url


@pytest.fixture(scope="session")
def tenant_factory(migrated: str, workspace: Path) -> TenantFactory:
    return TenantFactory(migrated, workspace)


@pytest.fixture(scope="session")
async def tenants(tenant_factory: TenantFactory, workspace: Path) -> list[TenantSpec]:
    """The session's tenant folder, `workspace/tenants`, for the tests that start `python -m app serve` (which
    syncs TENANTS_DIR at start-up, refuses an empty one and disables every tenant without a file there). It holds
    one tenant no test uses, and every tenant the factory applied (see TenantFactory)."""
    home = tenant_factory.spec("home")
    write_tenants(workspace / SHARED_TENANTS, [home])
    await apply_tenants(
        tenant_factory.database_url,
        load_tenant_files(tenant_factory.write(home), workspace / "data"),
        disable_missing=False,
    )
    return [home]


@pytest.fixture(scope="session")
async def server(migrated: str, workspace: Path) -> AsyncIterator[LiveServer]:
    async with LiveServer(make_settings(migrated, workspace)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


@pytest.fixture
async def alpha(tenant_factory: TenantFactory) -> TenantSpec:
    """A fresh tenant with one ES256 realm, `alpha-main`, and the roles viewer / agent / admin / support."""
    return await tenant_factory.fresh("alpha")


@pytest.fixture
async def beta(tenant_factory: TenantFactory) -> TenantSpec:
    """A fresh tenant with one ES256 realm, `beta-main`, and the roles reader / agent / boss / helpdesk."""
    return await tenant_factory.fresh("beta", roles=BETA_ROLES)
