"""The database going away under load: a private PostgreSQL cluster is stopped and started again while clients
read and update. Every request gets a 200, a contract 400 (a stale etag) or a 503 with Retry-After, never a 500 or
a dropped connection; the outage is logged once; the service recovers on its own; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.bootstrap import apply_tenants
from app.db import engine
from app.db.cluster import EmbeddedCluster
from app.db.piccolo_conf import DB
from tests.support import (
    ETAG_MISMATCH,
    LiveServer,
    TenantApi,
    TenantFactory,
    field_ids,
    load_tenant_files,
    make_settings,
    new_ticket,
)

CLIENTS = 8
BEFORE_SECONDS = 1.0
DOWN_SECONDS = 2.0
AFTER_SECONDS = 3.0
SERVICE_UNAVAILABLE = {
    "error": True,
    "code": "SERVICE_UNAVAILABLE",
    "message": "The service is temporarily unavailable; retry later",
    "status": 503,
}


@pytest.fixture
async def cluster(workspace: Path) -> AsyncIterator[EmbeddedCluster]:
    """A throwaway cluster of this test's own: stopping it disturbs no other test."""
    own = EmbeddedCluster(workspace / f"outage-{uuid.uuid4().hex[:8]}", throwaway=True)
    own.start()
    previous = DB.config.get("dsn")
    engine.configure(own.dsn())
    try:
        await engine.migrate()
        yield own
    finally:
        if previous is not None:
            engine.configure(previous)
        own.stop()


async def test_an_outage_is_503_with_retry_after_and_the_service_recovers_by_itself(
    cluster: EmbeddedCluster, workspace: Path, tenant_factory: TenantFactory, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = tenant_factory.spec("outage")
    await apply_tenants(
        cluster.dsn(), load_tenant_files(tenant_factory.write(tenant), workspace / "data"), disable_missing=False
    )
    settings = make_settings(cluster.dsn(), workspace, db_acquire_timeout_seconds=1.0)
    caplog.set_level(logging.WARNING, logger="app.db")
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        api = TenantApi.agent(http, tenant)
        request_type = await api.ticket_type("REQ")
        counter = field_ids(request_type)["counter"]
        tickets = [
            await new_ticket(api, request_type["id"], {field_ids(request_type)["title"]: f"Ticket {index}"})
            for index in range(CLIENTS)
        ]
        statuses: Counter[int] = Counter()
        failures: list[str] = []
        acknowledged: dict[str, list[str]] = {ticket["objectId"]: [] for ticket in tickets}
        recovered_at: list[float] = []
        restarted = asyncio.Event()
        # Until AFTER_SECONDS past the restart, however long pg_ctl takes to stop and start the cluster.
        deadline = [time.monotonic() + 600.0]

        def check(response: httpx.Response) -> None:
            statuses[response.status_code] += 1
            if response.status_code == 503:
                if response.json() != SERVICE_UNAVAILABLE or response.headers.get("retry-after") != "5":
                    failures.append(f"503 {response.headers} {response.text}")
            elif response.status_code == 400:
                if response.json() != ETAG_MISMATCH:
                    failures.append(f"400 {response.text}")
            elif response.status_code != 200:
                failures.append(f"{response.status_code} {response.text}")

        async def client(object_id: str) -> None:
            value = 0
            while time.monotonic() < deadline[0]:
                try:
                    shown = await api.get(object_id)
                    check(shown)
                    if shown.status_code != 200:
                        await asyncio.sleep(0.05)
                        continue
                    if restarted.is_set() and not recovered_at:
                        recovered_at.append(time.monotonic())
                    value += 1
                    body = {"etag": shown.json()["etag"], "ticketUpdate": {counter: value}}
                    updated = await api.update(object_id, body)
                    check(updated)
                    if updated.status_code == 200:
                        acknowledged[object_id].append(updated.json()["etag"])
                except httpx.TransportError as exc:
                    failures.append(f"transport error: {exc!r}")

        async def outage() -> None:
            await asyncio.sleep(BEFORE_SECONDS)
            await asyncio.to_thread(cluster.stop)
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(cluster.start)
            restarted.set()
            deadline[0] = time.monotonic() + AFTER_SECONDS

        await asyncio.gather(outage(), *(client(ticket["objectId"]) for ticket in tickets))

        assert failures == []
        assert statuses[503] > 0, statuses  # the outage was seen
        assert recovered_at, "no request succeeded after the database came back"
        # Recovered for good: every connection the outage broke is gone, none is handed out again.
        for ticket in tickets:
            assert (await api.get(ticket["objectId"])).status_code == 200
        # Nothing acknowledged is lost: every etag a 200 handed out is in the ticket's history.
        for object_id, etags in acknowledged.items():
            history = await http.get(
                f"/api/v2/ticketing/ticket/{object_id}/history", params={"per_page": 100}, headers=api.headers
            )
            assert history.status_code == 200
            pages = history.json()["pagination"]["last_page"]
            recorded = {entry["etag"] for entry in history.json()["data"]}
            for page in range(2, pages + 1):
                more = await http.get(
                    f"/api/v2/ticketing/ticket/{object_id}/history",
                    params={"per_page": 100, "page": page},
                    headers=api.headers,
                )
                recorded |= {entry["etag"] for entry in more.json()["data"]}
            assert set(etags) <= recorded, object_id
    outage_logs: list[Any] = [record.getMessage() for record in caplog.records if record.name == "app.db"]
    # Logged once when the outage began and once when it ended: no traceback, no line per request.
    assert outage_logs == ["database unavailable; answering 503 until it is back", "database available again"]
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"
