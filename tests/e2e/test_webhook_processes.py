"""Webhooks across real `python -m app serve` processes on a database of their own (so no other server of the test
session delivers their events): a kill -9 between commit and delivery loses nothing, and two processes delivering
the events of 16 concurrent writers keep each ticket's order at the receiver."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.receiver import Receiver
from tests.support import (
    API,
    STOP_TIMEOUT,
    Serve,
    TenantApi,
    TenantFactory,
    TenantSpec,
    cli_env,
    field_ids,
    free_port,
    new_ticket,
    own_database,
    write_tenants,
)

WEBHOOK_SETTINGS = {
    "WEBHOOK_ALLOW_LOOPBACK": "true",
    "WEBHOOK_POLL_INTERVAL_SECONDS": "0.05",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    "WEBHOOK_RETRY_MAX_SECONDS": "0.3",
}


@dataclass
class Installation:
    dsn: str
    home: Path
    tenant: TenantSpec

    def env(self, port: int) -> dict[str, str]:
        return cli_env(
            DATABASE_URL=self.dsn,
            PORT=str(port),
            TENANTS_DIR=str(self.home / "tenants"),
            DATA_DIR=str(self.home / "data"),
            **WEBHOOK_SETTINGS,
        )

    @contextlib.contextmanager
    def serve(self) -> Iterator[Serve]:
        port = free_port()
        with Serve(self.env(port), port, self.home) as server:
            yield server


@contextlib.asynccontextmanager
async def installation(database_url: str, workspace: Path, factory: TenantFactory) -> AsyncIterator[Installation]:
    async with own_database(database_url, "webhooks") as dsn:
        home = workspace / f"webhooks-{uuid.uuid4().hex[:8]}"
        tenant = factory.spec("hooks")
        write_tenants(home / "tenants", [tenant])
        yield Installation(dsn, home, tenant)


async def subscribe(http: httpx.AsyncClient, admin: TenantApi, url: str) -> dict[str, Any]:
    # The ticket events these tests count (the writers' first calls add users, whose events are not counted).
    events = ["ticket.created", "ticket.updated"]
    response = await http.post(f"{API}/webhook", headers=admin.headers, json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def committed_events(dsn: str, tenant_id: uuid.UUID) -> dict[str, list[int]]:
    """Each ticket's committed events: ticket id -> sequence numbers."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT ticket_id, sequence FROM ticket_event WHERE tenant_id = $1 ORDER BY ticket_id, sequence",
            tenant_id,
        )
    finally:
        await connection.close()
    events: dict[str, list[int]] = {}
    for row in rows:
        events.setdefault(str(row["ticket_id"]), []).append(row["sequence"])
    return events


def first_receipts(receiver: Receiver, secret: str) -> dict[str, list[int]]:
    """Per ticket, the sequence numbers in the order the receiver first accepted them (signatures verified)."""
    seen: set[str] = set()
    order: dict[str, list[int]] = {}
    for request in receiver.delivered():
        ticket = request.verified(secret)["data"]["ticket"]
        if request.webhook_id not in seen:
            seen.add(request.webhook_id)
            order.setdefault(ticket["id"], []).append(ticket["sequence"])
    return order


async def test_a_kill_9_between_commit_and_delivery_loses_no_event(
    database_url: str, workspace: Path, tenant_factory: TenantFactory
) -> None:
    async with installation(database_url, workspace, tenant_factory) as setup:
        with Receiver() as receiver:
            with setup.serve() as first:
                async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
                    admin = TenantApi.admin(http, setup.tenant)
                    subscription = await subscribe(http, admin, receiver.url)
                    receiver.gate.clear()  # the first delivery is held in flight
                    request_type = await admin.ticket_type("REQ")
                    fields = field_ids(request_type)
                    for n in range(2):
                        ticket = await new_ticket(admin, request_type["id"], {fields["title"]: f"Kill {n}"})
                        etag = ticket["etag"]
                        for value in (1, 2):
                            body = {"etag": etag, "ticketUpdate": {fields["counter"]: value}}
                            response = await admin.update(ticket["objectId"], body)
                            assert response.status_code == 200, response.text
                            etag = response.json()["etag"]
                await receiver.wait_for(1, successful=False)
                first.process.kill()
                first.process.wait(STOP_TIMEOUT)
            receiver.gate.set()
            committed = await committed_events(setup.dsn, setup.tenant.id)
            assert sorted(len(sequences) for sequences in committed.values()) == [3, 3]
            # At most the head of each ticket's queue was in flight (held, then answered into a dead connection).
            assert len(receiver.received()) <= 2
            with setup.serve():
                await receiver.wait_for(6, within=30)
                await asyncio.sleep(0.3)
            assert first_receipts(receiver, subscription["secret"]) == committed


async def test_two_processes_keep_each_tickets_order_under_16_concurrent_writers(
    database_url: str, workspace: Path, tenant_factory: TenantFactory
) -> None:
    writers_per_ticket, updates_per_writer = 4, 4
    async with installation(database_url, workspace, tenant_factory) as setup:
        with Receiver() as receiver, setup.serve() as one, setup.serve() as two:
            async with (
                httpx.AsyncClient(base_url=one.url, timeout=30) as first,
                httpx.AsyncClient(base_url=two.url, timeout=30) as second,
            ):
                admin = TenantApi.admin(first, setup.tenant)
                subscription = await subscribe(first, admin, receiver.url)
                request_type = await admin.ticket_type("REQ")
                fields = field_ids(request_type)
                tickets = [
                    await new_ticket(admin, request_type["id"], {fields["title"]: f"Race {n}"}) for n in range(4)
                ]

                async def writer(number: int) -> None:
                    api = TenantApi.agent(first if number % 2 else second, setup.tenant, subject=f"writer-{number}")
                    object_id = tickets[number % len(tickets)]["objectId"]
                    done = 0
                    while done < updates_per_writer:
                        etag = (await api.get(object_id)).json()["etag"]
                        body = {"etag": etag, "ticketUpdate": {fields["counter"]: number * 100 + done}}
                        response = await api.update(object_id, body)
                        if response.status_code == 200:
                            done += 1
                        else:
                            assert response.json()["code"] == "ETAG_MISMATCH", response.text

                await asyncio.gather(*(writer(n) for n in range(len(tickets) * writers_per_ticket)))
            expected = 4 * (1 + writers_per_ticket * updates_per_writer)
            await receiver.wait_for(expected, within=60)
            await asyncio.sleep(0.3)
        committed = await committed_events(setup.dsn, setup.tenant.id)
        assert sum(len(sequences) for sequences in committed.values()) == expected
        assert first_receipts(receiver, subscription["secret"]) == committed
        delivered = [request.webhook_id for request in receiver.delivered()]
        assert len(delivered) == len(set(delivered)) == expected  # nothing was sent twice
