"""v1 writes racing each other and v2 writes, through a real server on loopback: v1 clients send no etag, so each
v1 write is a compare-and-swap on the etag it read, retried on ETAG_MISMATCH. Clients changing different members
of one ticket at the same moment all keep their change, and a v1 write racing a v2 write never overwrites a change
it did not see. The racing statements are made to meet in PostgreSQL behind a row lock the test holds (`gated`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from tests.support import (
    ETAG_MISMATCH,
    LOCK_TICKETS,
    POOL_MAX,
    V1,
    LiveServer,
    TenantApi,
    TenantSpec,
    assert_numbered_events,
    field_ids,
    gated,
    make_settings,
    v1_headers,
)

FACILITY = {
    "category": "MAINTENANCE",
    "title": "Elevator Malfunction",
    "description": "Elevator not working on floor 3",
    "attachments": ["https://example.com/image1.jpg"],
    "notes": "Reported by the front desk",
}
# One new value per v1 member, each sent by its own client.
CHANGES = {
    "category": "ELECTRICITY",
    "title": "Power Outage - Building A",
    "description": "Updated description of the issue with more details",
    "attachments": ["https://example.com/image1.jpg", "https://example.com/image2.jpg"],
    "notes": "Updated with additional information from technician",
}


@pytest.fixture(scope="module")
async def live(migrated: str, workspace: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(migrated, workspace, db_pool_min=8, db_pool_max=POOL_MAX)
    async with LiveServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=httpx.Timeout(60.0)) as client:
        yield client


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def facility_ticket(api: TenantApi) -> tuple[dict[str, Any], dict[str, str]]:
    fac = await api.ticket_type("FAC")
    fields = field_ids(fac)
    created = await api.create(fac["id"], {fields[name]: value for name, value in FACILITY.items()})
    assert created.status_code == 201, created.text
    return (await api.get(created.json()["objectId"])).json(), fields


async def test_v1_clients_changing_different_members_at_once_all_keep_their_change(
    http: httpx.AsyncClient, db: asyncpg.Pool, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(http, alpha)
    ticket, fields = await facility_ticket(agent)
    headers = v1_headers(agent.bearer)

    async def racers() -> list[httpx.Response]:
        return await asyncio.gather(
            *(
                http.put(f"{V1}/tickets/{ticket['id']}", headers=headers, json={name: value})
                for name, value in CHANGES.items()
            )
        )

    answers = await gated(db, LOCK_TICKETS, (alpha.id, [uuid.UUID(ticket["id"])]), len(CHANGES), racers)
    assert [answer.status_code for answer in answers] == [200] * len(CHANGES), [a.text for a in answers]
    after = (await agent.get(ticket["object_id"])).json()
    assert {name: after["data"][fields[name]] for name in CHANGES} == CHANGES
    events = await ticket_events(db, alpha, ticket["id"])
    # One update event per client, each changing only its own member.
    assert sorted(next(iter(changes)) for changes in events) == sorted(fields[name] for name in CHANGES)
    assert all(len(changes) == 1 for changes in events)
    await assert_numbered_events(db, alpha.id, [ticket["id"]])


async def test_a_v1_write_racing_v2_writes_drops_neither(
    http: httpx.AsyncClient, db: asyncpg.Pool, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(http, alpha)
    ticket, fields = await facility_ticket(agent)
    v1_client = v1_headers(agent.bearer)

    async def racers() -> list[httpx.Response]:
        # Two v2 clients with the etag they read, one v1 client changing another member, one v1 client the same
        # member as a v2 client.
        return await asyncio.gather(
            agent.update(ticket["object_id"], {"etag": ticket["etag"], "ticketUpdate": {fields["title"]: "v2 title"}}),
            agent.update(ticket["object_id"], {"etag": ticket["etag"], "ticketUpdate": {fields["notes"]: "v2 notes"}}),
            http.put(f"{V1}/tickets/{ticket['id']}", headers=v1_client, json={"description": "v1 description"}),
            http.put(f"{V1}/tickets/{ticket['id']}", headers=v1_client, json={"notes": "v1 notes"}),
        )

    v2_title, v2_notes, v1_description, v1_notes = await gated(
        db, LOCK_TICKETS, (alpha.id, [uuid.UUID(ticket["id"])]), 4, racers
    )
    # The v1 writes always land; of the two v2 writes on one etag, one lands and the other is told (ETAG_MISMATCH).
    assert (v1_description.status_code, v1_notes.status_code) == (200, 200), (v1_description.text, v1_notes.text)
    v2 = [v2_title, v2_notes]
    assert sorted(answer.status_code for answer in v2) in ([200, 400], [400, 400]), [a.text for a in v2]
    assert all(answer.json() == ETAG_MISMATCH for answer in v2 if answer.status_code == 400)
    data = (await agent.get(ticket["object_id"])).json()["data"]
    assert data[fields["description"]] == "v1 description"
    if v2_title.status_code == 200:
        assert data[fields["title"]] == "v2 title"
    # Every write that was answered 200 is in the history, and each saw the one before it: each event's old value
    # of a field is the new value of that field's previous event (no write based on a stale read).
    events = await ticket_events(db, alpha, ticket["id"])
    assert len(events) == 2 + sum(answer.status_code == 200 for answer in v2)
    current = {fields[name]: value for name, value in FACILITY.items()}
    for changes in events:
        for field_id, change in changes.items():
            assert change["old"] == current[field_id], (field_id, changes)
            current[field_id] = change["new"]
    assert current == {key: data[key] for key in current}


async def test_v1_status_changes_racing_land_once_each_or_are_refused_by_the_workflow(
    http: httpx.AsyncClient, db: asyncpg.Pool, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(http, alpha)
    ticket, _ = await facility_ticket(agent)
    headers = v1_headers(agent.bearer)

    async def racers() -> list[httpx.Response]:
        return await asyncio.gather(
            *(
                http.patch(f"{V1}/tickets/{ticket['id']}/status", headers=headers, json={"status": status})
                for status in ("IN_PROGRESS", "CANCELLED")
            )
        )

    started, cancelled = await gated(db, LOCK_TICKETS, (alpha.id, [uuid.UUID(ticket["id"])]), 2, racers)
    statuses = sorted((started.status_code, cancelled.status_code))
    # Both moves are allowed from PENDING; once one has landed the other is decided on the new status: IN_PROGRESS
    # then CANCELLED is allowed, CANCELLED then IN_PROGRESS is not.
    final = (await agent.get(ticket["object_id"])).json()["state_name"]
    if statuses == [200, 200]:
        assert final == "CANCELLED"
    else:
        assert (statuses, final) == ([200, 400], "CANCELLED")
        assert started.json()["error"]["details"]["status"].startswith("Cannot change status from CANCELLED")


async def ticket_events(db: asyncpg.Pool, tenant: TenantSpec, ticket_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT changes::text AS changes FROM ticket_event "
        "WHERE tenant_id = $1 AND ticket_id = $2 AND kind = 'ticket.updated' ORDER BY sequence",
        tenant.id,
        uuid.UUID(ticket_id),
    )
    return [msgspec.json.decode(row["changes"]) for row in rows]
