"""Shared fixtures: one throwaway PostgreSQL cluster per test session (schema from the real migrations), test
tenants with their own keys, and the service running as a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.__main__ import bind_socket
from app.asgi import create_app
from app.bootstrap import apply_tenants
from app.config import Settings
from app.db import engine
from app.db.cluster import EmbeddedCluster
from tests.support import RealmSpec, SigningKey, TenantSpec, load_tenant_files, write_tenants

ALPHA_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")
BETA_ID = uuid.UUID("22222222-2222-4222-8222-222222222222")


@pytest.fixture(scope="session")
def workspace() -> Iterator[Path]:
    # Not pytest's tmp_path: its parent folder is private to root, and the cluster runs as `postgres`.
    path = Path(tempfile.mkdtemp(prefix="ticketing-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


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
def alpha() -> TenantSpec:
    return TenantSpec(
        id=ALPHA_ID,
        slug="alpha",
        realms=[
            RealmSpec("alpha-main", "https://idp.alpha.test/realms/alpha-main", SigningKey("RS256")),
            RealmSpec("alpha-partners", "https://idp.alpha.test/realms/alpha-partners", SigningKey("ES256")),
        ],
    )


@pytest.fixture(scope="session")
def beta() -> TenantSpec:
    return TenantSpec(
        id=BETA_ID,
        slug="beta",
        realms=[RealmSpec("beta-main", "https://idp.beta.test/realms/beta-main", SigningKey("RS256"))],
        roles={"read": ["reader", "agent"], "write": ["agent"], "admin": ["boss"], "support": "helpdesk"},
    )


@pytest.fixture(scope="session")
async def tenants(migrated: str, workspace: Path, alpha: TenantSpec, beta: TenantSpec) -> list[TenantSpec]:
    directory = write_tenants(workspace / "tenants", [alpha, beta])
    await apply_tenants(migrated, load_tenant_files(directory, workspace / "data"))
    return [alpha, beta]


class LiveServer:
    """The real ASGI app under uvicorn on a loopback port, in the test session's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        # The same listening socket `python -m app serve` uses (TCP_NODELAY set), on a free loopback port.
        self.socket = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, lifespan="on", log_config=None, access_log=False, loop="none")
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
        self.socket.close()


def make_settings(database_url: str, workspace: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": workspace / "data",
        "tenants_dir": workspace / "tenants",
        "jwks_min_refresh_seconds": 0.3,
        "db_pool_min": 1,
        "db_pool_max": 8,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def server(tenants: list[TenantSpec], database_url: str, workspace: Path) -> AsyncIterator[LiveServer]:
    async with LiveServer(make_settings(database_url, workspace)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http
