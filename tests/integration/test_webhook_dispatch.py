"""Dispatching the outbox: one dispatcher at a time per tenant (a transaction advisory lock), the others moving on
rather than waiting, and no event dispatched twice, even beside a dispatcher that does not take the lock (an older
version during a rolling deploy). Run on the session's database with its server, whose own delivery worker is a
second dispatcher: while a test holds a tenant's lock, that worker leaves the tenant alone too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from app.db.database import Database
from app.webhook.delivery import Dispatcher
from app.webhook.repository import OUTBOX_LOCK_KEY, TAKE_EVENTS, WebhookRepository
from tests.support import TenantApi, TenantSpec, new_ticket

# The lock a dispatcher takes for its transaction, held here for as long as a test needs it.
LOCK = f"SELECT pg_advisory_lock({OUTBOX_LOCK_KEY})"
UNLOCK = f"SELECT pg_advisory_unlock({OUTBOX_LOCK_KEY})"
SECRET = "whsec_" + "A" * 43 + "="  # 32 bytes, base64: a secret the service could have generated
UNDISPATCHED = "SELECT id FROM ticket_event WHERE tenant_id = $1 AND dispatched_at IS NULL ORDER BY id"


@contextlib.asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    opened = await asyncpg.connect(dsn)
    try:
        yield opened
    finally:
        await opened.close()


async def events(client: httpx.AsyncClient, tenant: TenantSpec, count: int) -> None:
    """`count` ticket.created events of the tenant."""
    api = TenantApi.agent(client, tenant)
    request_type = await api.ticket_type("REQ")
    title = next(field["id"] for field in request_type["fields"] if field["key"] == "title")
    for number in range(count):
        await new_ticket(api, request_type["id"], {title: f"Dispatch {number}"})


async def test_a_dispatcher_leaves_a_tenant_another_is_dispatching_and_every_event_is_dispatched_once(
    migrated: str, client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    db = Database(migrated, min_size=1, max_size=2)
    await db.open()
    try:
        repository = WebhookRepository(db)
        subscription = await repository.insert(
            alpha.id, uuid.uuid4(), "https://hooks.example.com/in", None, "dispatch test", True, SECRET, "test"
        )
        dispatcher = Dispatcher(db, repository, 3600.0)
        async with connection(migrated) as holder:
            await holder.execute(LOCK, alpha.id)  # another dispatcher at work on the tenant
            await events(client, alpha, 3)
            created = [row["id"] for row in await holder.fetch(UNDISPATCHED, alpha.id)]
            assert len(created) == 3
            _, left = await dispatcher.dispatch()
            assert left  # it moved on instead of waiting: the next round looks again
            assert [row["id"] for row in await holder.fetch(UNDISPATCHED, alpha.id)] == created
            await holder.execute(UNLOCK, alpha.id)
            # Free again: this dispatcher and the server's race for the events.
            deadline = time.monotonic() + 20
            while await holder.fetch(UNDISPATCHED, alpha.id):
                assert time.monotonic() < deadline, "the events were not dispatched"
                await dispatcher.dispatch()
                await asyncio.sleep(0.01)
            # (Not counted: the user.created of the agent's first call, which belongs to no ticket.)
            queued = await holder.fetch(
                "SELECT event_id, count(*) AS deliveries FROM webhook_delivery WHERE tenant_id = $1 "
                "AND subscription_id = $2 AND event_id IS NOT NULL GROUP BY event_id ORDER BY event_id",
                alpha.id,
                subscription.id,
            )
        assert [(row["event_id"], row["deliveries"]) for row in queued] == [(event, 1) for event in created]
    finally:
        await db.close()


async def test_an_event_a_dispatcher_without_the_lock_took_meanwhile_is_not_taken_again(
    migrated: str, client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    async with connection(migrated) as holder, connection(migrated) as older, connection(migrated) as newer:
        await holder.execute(LOCK, alpha.id)  # keeps the server's dispatcher away: the two below are the race
        await events(client, alpha, 2)
        # An older version's dispatcher: row locks on the tenant's undispatched events, then marks them.
        async with older.transaction():
            taken = await older.fetch(UNDISPATCHED + " FOR UPDATE", alpha.id)
            await older.execute(
                "UPDATE ticket_event SET dispatched_at = now() WHERE tenant_id = $1 AND id = ANY($2::bigint[])",
                alpha.id,
                [row["id"] for row in taken],
            )
            # Meanwhile the statement a dispatcher takes events with finds the same rows, and waits for their locks.
            taking = asyncio.create_task(newer.fetch(TAKE_EVENTS, alpha.id, 500))
            pid = newer.get_server_pid()
            deadline = time.monotonic() + 20
            while await holder.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid) != "Lock":
                assert time.monotonic() < deadline, "the taking statement never waited for the row locks"
                await asyncio.sleep(0.01)
        # Once the older dispatcher commits, the rows no longer match: nothing is taken twice.
        assert await taking == []
        assert len(taken) == 2
        await holder.execute(UNLOCK, alpha.id)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        # By id, the first batch would be the first ticket's 2 and 3 (or 2, 3 and 4): sent before its 1.
        (2, [[(True, 1), (True, 2)], [(True, 3), (True, 4)], [(False, 1)]]),
        (3, [[(True, 1), (True, 2), (True, 3)], [(True, 4), (False, 1)]]),
    ],
)
async def test_a_batch_takes_each_tickets_events_in_sequence_order_whatever_order_their_ids_are_in(
    migrated: str, client: httpx.AsyncClient, alpha: TenantSpec, batch: int, expected: list[list[tuple[bool, int]]]
) -> None:
    """As on Citus with writes through two nodes, each handing out ids from its own range: a ticket's first event
    has a higher id than its later ones."""
    async with connection(migrated) as holder, connection(migrated) as dispatcher:
        await holder.execute(LOCK, alpha.id)  # keeps the server's dispatcher away
        try:
            api = TenantApi.agent(client, alpha)
            request_type = await api.ticket_type("REQ")
            fields = {field["key"]: field["id"] for field in request_type["fields"]}
            first = await new_ticket(api, request_type["id"], {fields["title"]: "Two nodes"})
            etag = first["etag"]
            for value in (1, 2, 3):
                updated = await api.update(
                    first["objectId"], {"etag": etag, "ticketUpdate": {fields["counter"]: value}}
                )
                etag = updated.json()["etag"]
            other = await new_ticket(api, request_type["id"], {fields["title"]: "Another"})
            async with dispatcher.transaction():
                # The first ticket's creation moves to another node's range of ids: ids 2, 3, 4 of its later events
                # (in id order: its sequences 2, 3, 4, then the other ticket's 1, then its own 1).
                await dispatcher.execute(
                    "CREATE TEMP TABLE moved ON COMMIT DROP AS SELECT * FROM ticket_event "
                    "WHERE tenant_id = $1 AND ticket_id = $2 AND sequence = 1",
                    alpha.id,
                    uuid.UUID(first["id"]),
                )
                await dispatcher.execute(
                    "DELETE FROM ticket_event WHERE tenant_id = $1 AND ticket_id = $2 AND sequence = 1",
                    alpha.id,
                    uuid.UUID(first["id"]),
                )
                await dispatcher.execute("UPDATE moved SET id = id + 1000000000")
                await dispatcher.execute("INSERT INTO ticket_event OVERRIDING SYSTEM VALUE SELECT * FROM moved")
                batches = []
                while taken := await dispatcher.fetch(TAKE_EVENTS, alpha.id, batch):
                    batches.append(
                        await dispatcher.fetch(
                            "SELECT ticket_id = $2 AS first, sequence FROM ticket_event "
                            "WHERE tenant_id = $1 AND id = ANY($3::bigint[]) ORDER BY ticket_id = $2 DESC, sequence",
                            alpha.id,
                            uuid.UUID(first["id"]),
                            [row["id"] for row in taken],
                        )
                    )
                raise _RolledBack
        except _RolledBack:
            pass
        finally:
            await holder.execute(UNLOCK, alpha.id)
    # Each batch takes as many of each ticket's events as it has among the oldest: its first waiting ones.
    assert [[(row["first"], row["sequence"]) for row in taken] for taken in batches] == expected
    assert other["id"] != first["id"]


class _RolledBack(Exception):
    """Raised to roll the test's transaction back."""


def _reads(plan: object) -> set[tuple[str, str]]:
    """How the plan reads ticket_event: (index, its condition) per index scan (a bitmap scan's too), ("seq", "") for
    a whole-table scan."""
    if isinstance(plan, list):
        return set().union(*(_reads(value) for value in plan))
    if not isinstance(plan, dict):
        return set()
    found: set[tuple[str, str]] = set()
    kind = plan.get("Node Type")
    if plan.get("Relation Name") == "ticket_event" and kind == "Seq Scan":
        found.add(("seq", ""))
    elif kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and str(plan["Index Name"]).startswith(
        "ticket_event"
    ):
        found.add((str(plan["Index Name"]), str(plan.get("Index Cond", ""))))
    return found.union(*(_reads(value) for value in plan.values()))


async def test_taking_events_reads_waiting_events_only_on_their_partial_indexes(
    migrated: str, alpha: TenantSpec
) -> None:
    """The cached generic plan a dispatcher runs reads the waiting events on their partial indexes (each ticket's by
    sequence on the one made for it); never a ticket's whole history, nor the whole table."""
    async with connection(migrated) as checker:
        await checker.execute("SET plan_cache_mode = force_generic_plan")
        await checker.execute(f"PREPARE take_events(uuid, integer) AS {TAKE_EVENTS}")
        plan = json.loads(await checker.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE take_events('{alpha.id}', 500)"))
    reads = _reads(plan)
    waiting_only = {"ticket_event_undispatched_idx", "ticket_event_undispatched_ticket_idx"}
    # Which of the two partial indexes serves the oldest events depends on the statistics (each holds only waiting
    # events); the rows it marks may be found on the primary key, by their ids.
    assert reads, plan
    for index, condition in reads:
        assert index in waiting_only or (index == "ticket_event_pkey" and "ANY" in condition), (index, condition)
    assert any(index == "ticket_event_undispatched_ticket_idx" for index, _ in reads), reads
