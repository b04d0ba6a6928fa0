"""Offboarding: a tenant whose file is gone (or says `disabled = true`) is disabled by the next sync, in every
worker, without a restart; its rows stay until `python -m app tenants purge` deletes them, and only then.

A full sync disables every tenant it is not given, so these tests run on a database of their own, with two servers
on it standing for two worker processes (each has its own tenant registry and hears of changes by itself), and the
real command line (`python -m app tenants sync|purge`) as an operator runs it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.bootstrap import apply_tenants
from app.config import PROJECT_ROOT
from app.db.database import Database
from app.tenancy.service import SyncResult
from app.ticket.repository import TicketRepository
from app.ticket.sweeps import PendingCloseTimer
from tests.support import (
    API,
    INVALID_TOKEN,
    LOGIN,
    ME,
    TENANT_NOT_FOUND,
    LiveServer,
    TenantApi,
    TenantFactory,
    TenantSpec,
    auth_headers,
    cli_env,
    field_ids,
    json_log,
    load_tenant_files,
    make_settings,
    new_ticket,
    own_database,
    token,
    upload,
    write_tenants,
)

CLI_TIMEOUT = 60.0
CHANGE_TIMEOUT = 10.0  # seconds for both servers to hear of a sync
DISABLED_NOTE = "(their data is kept; `python -m app tenants purge <slug> --yes` deletes it)"


@dataclass
class World:
    """The offboarding tests' database, tenants folder (one for the module, as an operator has one) and servers."""

    dsn: str
    tenants_dir: Path
    data_dir: Path
    servers: list[LiveServer]
    factory: TenantFactory
    db: asyncpg.Pool

    def add(self, *tenants: TenantSpec) -> None:
        """Write (or rewrite) the tenants' files in the folder."""
        write_tenants(self.tenants_dir, list(tenants))

    def remove(self, tenant: TenantSpec) -> None:
        (self.tenants_dir / f"{tenant.slug}.toml").unlink()

    def cli(self, *args: str, tenants_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = cli_env(
            DATABASE_URL=self.dsn, TENANTS_DIR=str(tenants_dir or self.tenants_dir), DATA_DIR=str(self.data_dir)
        )
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )

    async def sync(self) -> SyncResult:
        """What `tenants sync` does, in-process (the folder is every tenant there is)."""
        result, _ = await apply_tenants(
            self.dsn, load_tenant_files(self.tenants_dir, self.data_dir), disable_missing=True
        )
        return result

    async def rows(self, tenant: TenantSpec) -> dict[str, int]:
        """The tenant's rows in every table that has a tenant_id column, and its tenant row."""
        tables = await self.db.fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name"
        )
        counts = {
            row["table_name"]: await self.db.fetchval(
                f"SELECT count(*) FROM {row['table_name']} WHERE tenant_id = $1", tenant.id
            )
            for row in tables
        }
        counts["tenant"] = await self.db.fetchval("SELECT count(*) FROM tenant WHERE id = $1", tenant.id)
        return counts


@pytest.fixture(scope="module")
async def world(database_url: str, workspace: Path, tenant_factory: TenantFactory) -> AsyncIterator[World]:
    home = workspace / f"offboarding-{uuid.uuid4().hex[:8]}"
    async with own_database(database_url, "offboarding") as dsn:
        # The pending-close timer of the servers stays out of the way: the test that needs it runs it itself.
        settings = make_settings(dsn, workspace, pending_close_interval_seconds=3600.0)
        db = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with LiveServer(settings) as first, LiveServer(settings) as second:
                yield World(dsn, home / "tenants", workspace / "data", [first, second], tenant_factory, db)
        finally:
            await db.close()


async def me_status(server: LiveServer, tenant: TenantSpec) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return await http.get(ME, headers=auth_headers(tenant, token(tenant, roles=[], scope="")))


async def answer_in_every_server(world: World, tenant: TenantSpec, status: int) -> list[dict[str, Any]]:
    """Poll GET /me with a token of the tenant on each server until it answers `status`; returns the bodies."""
    bodies = []
    for server in world.servers:
        deadline = time.monotonic() + CHANGE_TIMEOUT
        while (response := await me_status(server, tenant)).status_code != status:
            assert time.monotonic() < deadline, f"{server.url} still answers {response.status_code}: {response.text}"
            await asyncio.sleep(0.02)
        bodies.append(response.json())
    return bodies


async def open_ticket(api: TenantApi, title: str) -> dict[str, Any]:
    """A new REQ ticket of the agent's tenant, as a GET shows it."""
    request_type = await api.ticket_type("REQ")
    created = await new_ticket(api, request_type["id"], {field_ids(request_type)["title"]: title})
    read = await api.get(created["objectId"])
    assert read.status_code == 200, read.text
    body: dict[str, Any] = read.json()
    return body


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the first server."""
    async with httpx.AsyncClient(base_url=world.servers[0].url, timeout=10) as client:
        yield client


# --- disabling and enabling by sync ---------------------------------------------------------------------------


async def test_a_removed_file_disables_its_tenant_in_every_worker_and_restoring_it_enables_it_again(
    world: World, http: httpx.AsyncClient
) -> None:
    gone, staying = world.factory.spec("gone"), world.factory.spec("staying")
    world.add(gone, staying)
    first = world.cli("tenants", "sync")
    assert first.returncode == 0, first.stderr
    await answer_in_every_server(world, gone, 200)
    api = TenantApi.agent(http, gone)
    ticket = await open_ticket(api, "Kept through offboarding")
    rows = await world.rows(gone)
    assert rows["ticket"] == 1 and rows["ticket_event"] == 1 and rows["tenant"] == 1

    world.remove(gone)
    removed = world.cli("tenants", "sync")

    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == f"tenants changed: {gone.slug}\ntenants disabled: {gone.slug} {DISABLED_NOTE}\n"
    assert [
        (record["tenant"], record["reason"])
        for record in json_log(removed.stderr)
        if record["msg"] == "tenant disabled"
    ] == [(gone.slug, "its file is gone")]
    # Both workers refuse the tenant's tokens with the contract's "Tenant not found", without a restart; the
    # other tenant is untouched, and the tenant's rows are all still there.
    assert await answer_in_every_server(world, gone, 404) == [TENANT_NOT_FOUND, TENANT_NOT_FOUND]
    await answer_in_every_server(world, staying, 200)
    assert (await api.get(ticket["object_id"])).json() == TENANT_NOT_FOUND
    assert await world.rows(gone) == rows
    # A second sync has nothing left to do.
    assert world.cli("tenants", "sync").stdout == "tenants unchanged\n"

    world.add(gone)
    restored = world.cli("tenants", "sync")

    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == f"tenants changed: {gone.slug}\ntenants enabled again: {gone.slug}\n"
    await answer_in_every_server(world, gone, 200)
    again = await api.get(ticket["object_id"])
    assert again.status_code == 200
    assert again.json() == ticket  # same data, same etag: nothing was touched while the tenant was away
    assert await world.rows(gone) == rows


async def test_disabled_true_in_the_file_disables_the_tenant_and_false_enables_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    flagged = world.factory.spec("flagged")
    world.add(flagged)
    assert await world.sync() == SyncResult(changed=[flagged.slug], disabled=[], enabled=[])
    await answer_in_every_server(world, flagged, 200)

    flagged.disabled = True
    world.add(flagged)
    caplog.set_level(logging.WARNING, logger="app.tenancy")
    assert await world.sync() == SyncResult(changed=[flagged.slug], disabled=[flagged.slug], enabled=[])

    assert [(r.getMessage(), getattr(r, "tenant", None), getattr(r, "reason", None)) for r in caplog.records] == [
        ("tenant disabled", flagged.slug, "disabled in its file")
    ]
    assert await answer_in_every_server(world, flagged, 404) == [TENANT_NOT_FOUND, TENANT_NOT_FOUND]
    # Removing the file of a tenant that is disabled already changes nothing.
    world.remove(flagged)
    assert await world.sync() == SyncResult(changed=[], disabled=[], enabled=[])

    flagged.disabled = False
    world.add(flagged)
    assert await world.sync() == SyncResult(changed=[flagged.slug], disabled=[], enabled=[flagged.slug])
    await answer_in_every_server(world, flagged, 200)


async def test_a_new_tenant_whose_file_says_disabled_is_stored_but_not_seeded_or_let_in(world: World) -> None:
    dormant = world.factory.spec("dormant")
    dormant.disabled = True
    world.add(dormant)

    assert await world.sync() == SyncResult(changed=[dormant.slug], disabled=[dormant.slug], enabled=[])

    rows = await world.rows(dormant)
    assert rows.pop("tenant") == 1
    assert set(rows.values()) == {0}
    assert await answer_in_every_server(world, dormant, 404) == [TENANT_NOT_FOUND, TENANT_NOT_FOUND]
    dormant.disabled = False
    world.add(dormant)
    await world.sync()
    await answer_in_every_server(world, dormant, 200)
    seeded = await world.rows(dormant)
    # Seeded once it is enabled: seed 003's seven states and the facility workflow's four, REQ and FAC.
    assert (seeded["ticket_state"], seeded["ticket_type"]) == (11, 2)


async def test_an_empty_tenants_folder_is_refused_and_disables_nothing(world: World, workspace: Path) -> None:
    present = world.factory.spec("present")
    world.add(present)
    await world.sync()
    before = await world.db.fetch("SELECT id, config::text FROM tenant ORDER BY id")
    empty = workspace / f"offboarding-empty-{uuid.uuid4().hex[:8]}"
    empty.mkdir()

    refused = world.cli("tenants", "sync", tenants_dir=empty)

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines()[-1] == f"error: {empty}: no tenant files (*.toml)"
    assert await world.db.fetch("SELECT id, config::text FROM tenant ORDER BY id") == before
    await answer_in_every_server(world, present, 200)


async def test_the_pending_close_timer_leaves_a_disabled_tenants_tickets_alone(
    world: World, http: httpx.AsyncClient
) -> None:
    paused = world.factory.spec("paused")
    world.add(paused)
    await world.sync()
    await answer_in_every_server(world, paused, 200)
    api = TenantApi.agent(http, paused)
    ticket = await open_ticket(api, "Due while the tenant is away")
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    moved = await api.change_status(
        ticket["object_id"], {"etag": ticket["etag"], "state": "pending close", "pendingUntil": later}
    )
    assert moved.status_code == 200, moved.text
    world.remove(paused)
    await world.sync()
    # Its time comes while the tenant is disabled.
    await world.db.execute(
        "UPDATE ticket SET pending_until = now() - interval '1 minute' WHERE tenant_id = $1", paused.id
    )
    db = Database(world.dsn, min_size=1, max_size=1)
    await db.open()
    try:
        timer = PendingCloseTimer(TicketRepository(db), 3600.0)
        assert await timer.sweep() == 0
        world.add(paused)
        await world.sync()
        assert await timer.sweep() == 1
    finally:
        await db.close()


# --- purge -----------------------------------------------------------------------------------------------------


def removed_rows(stdout: str, tenant: TenantSpec, verb: str) -> dict[str, int]:
    """The purge report: a heading naming the tenant, then one `table  count` line per table."""
    heading, *lines = stdout.splitlines()
    assert heading == f"tenant {tenant.slug} ({tenant.id}): rows {verb}"
    return {table: int(count) for table, count in (line.split() for line in lines)}


async def test_purge_removes_every_row_of_a_disabled_tenant_and_nothing_else(
    world: World, http: httpx.AsyncClient
) -> None:
    doomed = world.factory.spec("doomed", builtin_realm=True)
    bystander = world.factory.spec("bystander", builtin_realm=True)
    world.add(doomed, bystander)
    await world.sync()
    await answer_in_every_server(world, doomed, 200)
    await answer_in_every_server(world, bystander, 200)
    for tenant in (doomed, bystander):
        # A service account, and a failed sign-in (counted for the throttle).
        assert world.cli("client", "create", "--tenant", tenant.slug, "--client", "purge-me").returncode == 0
        failed = await http.post(
            LOGIN, json={"email": "nobody@example.com", "password": "guess"}, headers={"x-tenantid": str(tenant.id)}
        )
        assert failed.status_code == 401, failed.text
        api = TenantApi.agent(http, tenant)
        ticket = await open_ticket(api, "Some work")
        changed = await api.change_status(
            ticket["object_id"], {"etag": ticket["etag"], "state": "open"}, **{"idempotency-key": "purge-me"}
        )
        assert changed.status_code == 200, changed.text
        commented = await api.comment(ticket["object_id"], {"content": "Purge me too"})
        assert commented.status_code == 201, commented.text
        attached = await upload(api, ticket["object_id"], "purge.txt", b"purge me\n")
        assert attached.status_code == 201, attached.text
        # An inactive webhook (never sent) with one delivery: a test ping.
        admin = TenantApi.admin(http, tenant)
        hook = await http.post(
            f"{API}/webhook", headers=admin.headers, json={"url": "https://8.8.8.8/purge", "active": False}
        )
        assert hook.status_code == 201, hook.text
        ping = await http.post(f"{API}/webhook/{hook.json()['id']}/test", headers=admin.headers)
        assert ping.status_code == 202, ping.text
        # Seed 003's integer actor ids are numbered when a v1 answer first names them.
        numbered = await http.get("/api/v1/ticket_states", headers={"authorization": f"Bearer {api.bearer}"})
        assert numbered.status_code == 200, numbered.text
    doomed_rows, bystander_rows = await world.rows(doomed), await world.rows(bystander)
    assert all(doomed_rows.values()), doomed_rows  # a row in every tenant table: the purge has work everywhere

    # An enabled tenant and an unknown one are refused, and nothing changes.
    enabled = world.cli("tenants", "purge", doomed.slug, "--yes")
    assert (enabled.returncode, enabled.stdout) == (1, "")
    assert enabled.stderr.splitlines()[-1] == (
        f"error: tenant {doomed.slug} ({doomed.id}) is enabled; only a disabled tenant is purged: remove its file "
        "from the tenants folder (or set `disabled = true` in it) and sync first"
    )
    unknown = world.cli("tenants", "purge", "no-such-tenant", "--yes")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr.splitlines()[-1] == "error: no tenant 'no-such-tenant' in the database (give its id or slug)"
    assert await world.rows(doomed) == doomed_rows

    world.remove(doomed)
    await world.sync()
    await answer_in_every_server(world, doomed, 404)

    # Without --yes: what would go, and nothing goes.
    dry_run = world.cli("tenants", "purge", doomed.slug)
    assert dry_run.returncode == 1
    assert removed_rows(dry_run.stdout, doomed, "would be removed (nothing was)") == doomed_rows
    assert dry_run.stderr.splitlines()[-1] == (
        f"error: nothing was removed; to delete these rows for ever: python -m app tenants purge {doomed.slug} --yes"
    )
    assert await world.rows(doomed) == doomed_rows

    purged = world.cli("tenants", "purge", str(doomed.id), "--yes")

    assert purged.returncode == 0, purged.stderr
    report = removed_rows(purged.stdout, doomed, "removed")
    # Every table with a tenant_id column, children before parents, the tenant row last.
    assert list(report) == [
        "attachment",
        "webhook_delivery",
        "webhook_subscription",
        "ticket_comment",
        "ticket_event",
        "ticket",
        "display_id_sequence",
        "idempotency_key",
        "ticket_type_version",
        "ticket_type",
        "ticket_state",
        "ticket_state_serial",
        "user_event",
        "app_user",
        "service_client",
        "login_failure",
        "actor_number",
        "tenant",
    ]
    assert report == doomed_rows
    assert await world.rows(doomed) == {table: 0 for table in doomed_rows}
    assert await world.rows(bystander) == bystander_rows
    # The tenant is gone for good: its realm's tokens name an issuer nobody has any more.
    for server in world.servers:
        response = await me_status(server, doomed)
        assert (response.status_code, response.json()) == (401, INVALID_TOKEN)
    await answer_in_every_server(world, bystander, 200)
    again = world.cli("tenants", "purge", doomed.slug, "--yes")
    assert again.stderr.splitlines()[-1] == f"error: no tenant '{doomed.slug}' in the database (give its id or slug)"

    # Its file may come back: a new, empty tenant, whose ticket types no worker remembers from before (the first
    # server had them cached, from the ticket above).
    world.add(doomed)
    await world.sync()
    await answer_in_every_server(world, doomed, 200)
    for number, server in enumerate(world.servers, start=1):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            fresh = await open_ticket(TenantApi.agent(client, doomed), "A fresh start")
            assert fresh["object_id"] == f"REQ-{number:04d}"
