"""Concurrency through the real server: many clients at once on loopback, against a dedicated LiveServer whose
pool is large enough that the racing statements really meet in PostgreSQL.

Covers the etag compare-and-swap (one winner among simultaneous writers, no lost increments under a
read/CAS/retry loop, races on different tickets staying independent, assignments racing updates on one etag with
nothing lost), gap-free display IDs under concurrent creates, and Idempotency-Key under concurrent identical
creates. Every outcome is checked on the wire and in the database (ticket_event, display_id_sequence).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from tests.support import (
    API,
    ASSIGNED,
    ETAG_MISMATCH,
    LOCK_TICKETS,
    POOL_MAX,
    UPDATED,
    LiveServer,
    TenantApi,
    TenantSpec,
    assert_numbered_events,
    by_name,
    field_ids,
    gated,
    make_settings,
    named,
)

AGENT_CATALOG = {"type": "agent", "module": "ticketing"}
KEY_REUSED = {
    "error": True,
    "code": "IDEMPOTENCY_KEY_REUSED",
    "message": "This Idempotency-Key was already used with a different request body",
    "status": 422,
}


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def live(migrated: str, workspace: Path) -> AsyncIterator[LiveServer]:
    # 40 connections: enough that nearly every racing request holds its own, so the races happen in PostgreSQL.
    settings = make_settings(migrated, workspace, db_pool_min=8, db_pool_max=POOL_MAX)
    async with LiveServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    timeout = httpx.Timeout(60.0, connect=30.0, pool=60.0)
    async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=timeout) as client:
        yield client


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def alpha_api(http: httpx.AsyncClient, alpha: TenantSpec) -> TenantApi:
    return TenantApi.agent(http, alpha, subject="concurrency-agent")


# --- helpers ---------------------------------------------------------------------------------------------------


async def ticket_type(api: TenantApi, prefix: str) -> tuple[str, dict[str, str]]:
    found = await api.ticket_type(prefix)
    return str(found["id"]), field_ids(found)


async def new_ticket(api: TenantApi, prefix: str, data: dict[str, str]) -> dict[str, Any]:
    """Create a ticket of the type with `prefix`; `data` is keyed by field key. Returns the GET body."""
    type_id, fields = await ticket_type(api, prefix)
    created = await api.create(type_id, {fields[key]: value for key, value in data.items()})
    assert created.status_code == 201, created.text
    shown = await api.get(created.json()["objectId"])
    assert shown.status_code == 200, shown.text
    ticket: dict[str, Any] = shown.json()
    assert ticket["etag"] == created.json()["etag"]
    return ticket


def state_of(ticket: dict[str, Any]) -> dict[str, Any]:
    """How a ticket's GET document names its state: a write's answer names it alike."""
    return {key: ticket[key] for key in ("state_id", "state_name", "state_type")}


async def updated_events(db: asyncpg.Pool, tenant: TenantSpec, ticket_id: str) -> list[asyncpg.Record]:
    await assert_numbered_events(db, tenant.id, [ticket_id])
    return await db.fetch(
        "SELECT changes::text AS changes, etag FROM ticket_event "
        "WHERE tenant_id = $1 AND ticket_id = $2 AND kind = 'ticket.updated' ORDER BY id",
        tenant.id,
        uuid.UUID(ticket_id),
    )


async def race(api: TenantApi, object_id: str, etag: str, field_id: str, values: list[str]) -> list[httpx.Response]:
    """One PATCH per value, all with the same etag, all at once."""
    return await asyncio.gather(
        *(api.update(object_id, {"etag": etag, "ticketUpdate": {field_id: value}}) for value in values)
    )


def single_winner(responses: list[httpx.Response], values: list[str], ticket: dict[str, Any]) -> tuple[str, str]:
    """Assert exactly one 200 and only exact ETAG_MISMATCH losers (`ticket`: the GET document all raced with);
    return (winning value, new etag)."""
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 400: len(responses) - 1}, statuses
    winners = [(value, r) for value, r in zip(values, responses, strict=True) if r.status_code == 200]
    [(value, winner)] = winners
    body = winner.json()
    new_etag = body["etag"]
    # An update leaves the state as it was.
    assert body == {**UPDATED, "etag": new_etag, **state_of(ticket)}
    assert str(uuid.UUID(new_etag)) == new_etag and new_etag != ticket["etag"]
    for response in responses:
        if response.status_code == 400:
            assert response.json() == ETAG_MISMATCH
    return value, new_etag


# --- 1. one winner among simultaneous writers ----------------------------------------------------------------


async def test_fifty_simultaneous_updates_with_one_etag_have_exactly_one_winner(
    alpha_api: TenantApi, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    ticket = await new_ticket(alpha_api, "REQ", {"title": "fifty writers"})
    _, fields = await ticket_type(alpha_api, "REQ")
    description = fields["description"]
    values = [f"<p>writer {i}</p>" for i in range(50)]

    # All 50 at once; the first POOL_MAX of them queue on the ticket's row lock and are released together.
    responses = await gated(
        db,
        LOCK_TICKETS,
        (alpha.id, [uuid.UUID(ticket["id"])]),
        POOL_MAX,
        lambda: race(alpha_api, ticket["object_id"], ticket["etag"], description, values),
    )
    value, new_etag = single_winner(responses, values, ticket)

    shown = await alpha_api.get(ticket["object_id"])
    assert shown.status_code == 200
    assert shown.json()["etag"] == new_etag
    assert shown.headers["etag"] == f'"{new_etag}"'
    assert shown.json()["data"][description] == value
    events = await updated_events(db, alpha, ticket["id"])
    assert len(events) == 1
    assert msgspec.json.decode(events[0]["changes"]) == {description: {"old": None, "new": value}}
    assert str(events[0]["etag"]) == new_etag


# --- 2. no lost increments under read / compare-and-swap / retry ---------------------------------------------

WORKERS = 32
INCREMENTS = 25
MAX_BACKOFF = 0.5  # seconds


async def test_concurrent_read_cas_retry_increments_lose_nothing(
    alpha_api: TenantApi, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    ticket = await new_ticket(alpha_api, "REQ", {"title": "shared counter"})
    _, fields = await ticket_type(alpha_api, "REQ")
    counter = fields["counter"]
    object_id = ticket["object_id"]
    assert ticket["data"][counter] == 0
    success_etags: list[str] = []
    transitions: list[tuple[int, int]] = []
    statuses: Counter[int] = Counter()
    active = WORKERS
    cycle = 0.01  # running mean of one read + compare-and-swap, in seconds

    async def worker(seed: int) -> None:
        nonlocal active, cycle
        rng = random.Random(seed)
        done = 0
        while done < INCREMENTS:
            started = time.monotonic()
            read = await alpha_api.get(object_id)
            statuses[read.status_code] += 1
            assert read.status_code == 200, read.text
            current = read.json()
            value = current["data"][counter]
            written = await alpha_api.update(object_id, {"etag": current["etag"], "ticketUpdate": {counter: value + 1}})
            statuses[written.status_code] += 1
            cycle = 0.9 * cycle + 0.1 * (time.monotonic() - started)
            if written.status_code == 200:
                body = written.json()
                assert body == {**UPDATED, "etag": body["etag"], **state_of(ticket)}
                success_etags.append(body["etag"])
                transitions.append((value, value + 1))
                done += 1
            else:
                assert (written.status_code, written.json()) == (400, ETAG_MISMATCH)
                # Jittered back-off scaled to the contenders still running and the server's pace (capped): the
                # writers keep colliding (hundreds of mismatches per run), but the retry storm, and so the run
                # time, stays small even on a busy 2-core machine.
                await asyncio.sleep(rng.uniform(0, min(MAX_BACKOFF, 3 * active * cycle)))
        active -= 1

    await asyncio.gather(*(worker(seed) for seed in range(WORKERS)))

    total = WORKERS * INCREMENTS
    assert not [status for status in statuses if status >= 500], statuses
    assert set(statuses) <= {200, 400}, statuses
    assert statuses[400] > 0, "the writers never collided: the race was not exercised"
    assert len(success_etags) == total
    assert len(set(success_etags)) == total, "an etag was issued twice"
    assert sorted(transitions) == [(n, n + 1) for n in range(total)]
    final = await alpha_api.get(object_id)
    assert final.json()["data"][counter] == total
    assert final.json()["etag"] in set(success_etags)

    events = await updated_events(db, alpha, ticket["id"])
    assert len(events) == total
    chain = [msgspec.json.decode(e["changes"]) for e in events]
    assert chain == [{counter: {"old": n, "new": n + 1}} for n in range(total)]
    assert {str(e["etag"]) for e in events} == set(success_etags)
    assert str(events[-1]["etag"]) == final.json()["etag"]


# --- 3. gap-free display IDs ------------------------------------------------------------------------------------

CREATES = 200
FAC_TICKETS = "FROM ticket WHERE tenant_id = $1 AND object_id LIKE 'FAC-%'"
FAC_SEQUENCE = "FROM display_id_sequence WHERE tenant_id = $1 AND prefix = 'FAC'"


@pytest.mark.parametrize("sequence", ["new", "existing"])
async def test_two_hundred_concurrent_creates_get_consecutive_display_ids(
    http: httpx.AsyncClient, beta: TenantSpec, db: asyncpg.Pool, sequence: str
) -> None:
    # A new tenant has no FAC sequence yet: the racers fight over creating it. An existing one (after one ticket)
    # they take from its row.
    api = TenantApi.agent(http, beta, subject="concurrency-creator")
    type_id, fields = await ticket_type(api, "FAC")
    if sequence == "existing":
        await new_ticket(api, "FAC", {"category": "CLEANING", "title": "the first spill"})
    before = 0 if sequence == "new" else 1
    assert await db.fetchval(f"SELECT count(*) {FAC_TICKETS}", beta.id) == before
    fresh = await db.fetchval(f"SELECT NOT EXISTS (SELECT 1 {FAC_SEQUENCE})", beta.id)
    assert fresh is (sequence == "new")

    async def create(i: int) -> httpx.Response:
        return await http.post(
            f"{API}/ticket",
            params=AGENT_CATALOG,
            headers=api.headers,
            json={"ticketTypeId": type_id, "data": {fields["category"]: "CLEANING", fields["title"]: f"spill {i}"}},
        )

    # The gate: a fresh sequence is held by an uncommitted insert of its row (rolled back, so it stays fresh and
    # the racers then fight over creating it), an existing one by its row lock. POOL_MAX creates queue behind it.
    lock = (
        "INSERT INTO display_id_sequence (tenant_id, prefix, last_value) VALUES ($1, 'FAC', 0)"
        if fresh
        else f"SELECT 1 {FAC_SEQUENCE} FOR UPDATE"
    )
    responses = await gated(
        db, lock, (beta.id,), POOL_MAX, lambda: asyncio.gather(*(create(i) for i in range(CREATES)))
    )

    assert Counter(r.status_code for r in responses) == {201: CREATES}
    bodies = [r.json() for r in responses]
    initial = named(await by_name(api, "PENDING"))  # the facility workflow's initial state
    for body in bodies:
        assert body == {
            "success": True,
            "message": "ticket created successfully",
            "status": 201,
            "objectId": body["objectId"],
            "id": body["id"],
            "etag": body["etag"],
            **initial,
        }
    object_ids = [b["objectId"] for b in bodies]
    assert len(set(object_ids)) == CREATES
    assert len({b["id"] for b in bodies}) == CREATES
    expected = [f"FAC-{n:04d}" for n in range(before + 1, before + CREATES + 1)]
    assert sorted(object_ids, key=lambda o: int(o[4:])) == expected
    assert await db.fetchval(f"SELECT count(*) {FAC_TICKETS}", beta.id) == before + CREATES
    assert await db.fetchval(f"SELECT last_value {FAC_SEQUENCE}", beta.id) == before + CREATES
    # Each ticket's title says which request created it: the response named the ticket that was stored.
    titles = dict(
        await db.fetch(
            "SELECT object_id, data ->> $2 FROM ticket WHERE tenant_id = $1 AND object_id = ANY($3::text[])",
            beta.id,
            fields["title"],
            object_ids,
        )
    )
    assert [titles[o] for o in object_ids] == [f"spill {i}" for i in range(CREATES)]


# --- 4. Idempotency-Key under concurrent identical creates ------------------------------------------------------


async def test_concurrent_creates_with_one_idempotency_key_create_one_ticket(
    alpha_api: TenantApi, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    type_id, fields = await ticket_type(alpha_api, "REQ")
    await new_ticket(alpha_api, "REQ", {"title": "makes sure alpha's REQ sequence row exists"})
    key = "concurrent-key"
    marker = "idempotent marker"
    data = {fields["title"]: marker, fields["priority"]: "high"}

    # Holding the REQ sequence row parks the request that claimed the key mid-transaction (key inserted, ticket
    # not yet), and the nine others queue behind its uncommitted key: the worst interleaving, every run.
    responses = await gated(
        db,
        "SELECT 1 FROM display_id_sequence WHERE tenant_id = $1 AND prefix = 'REQ' FOR UPDATE",
        (alpha.id,),
        10,
        lambda: asyncio.gather(*(alpha_api.create(type_id, data, **{"Idempotency-Key": key}) for _ in range(10))),
    )

    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    first = bodies[0]
    assert first == {
        "success": True,
        "message": "ticket created successfully",
        "status": 201,
        "objectId": first["objectId"],
        "id": first["id"],
        "etag": first["etag"],
        **named(await by_name(alpha_api, "new")),
    }
    assert all(body == first for body in bodies)
    assert all(r.headers["etag"] == f'"{first["etag"]}"' for r in responses)
    replayed = [r.headers.get("idempotent-replayed") for r in responses]
    assert sorted(replayed, key=str) == sorted([None] + ["true"] * 9, key=str)

    stored = await db.fetch(
        "SELECT id, object_id, etag FROM ticket WHERE tenant_id = $1 AND data @> $2::jsonb",
        alpha.id,
        msgspec.json.encode({fields["title"]: marker}).decode(),
    )
    assert [(str(r["id"]), r["object_id"], str(r["etag"])) for r in stored] == [
        (first["id"], first["objectId"], first["etag"])
    ]
    created_events = await db.fetchval(
        "SELECT count(*) FROM ticket_event WHERE tenant_id = $1 AND ticket_id = $2 AND kind = 'ticket.created'",
        alpha.id,
        stored[0]["id"],
    )
    assert created_events == 1

    reused = await alpha_api.create(type_id, {**data, fields["priority"]: "low"}, **{"Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.json() == KEY_REUSED
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ticket WHERE tenant_id = $1 AND data @> $2::jsonb",
            alpha.id,
            msgspec.json.encode({fields["title"]: marker}).decode(),
        )
        == 1
    )


# --- 5. races on different tickets stay independent --------------------------------------------------------------


async def test_simultaneous_races_on_two_tickets_do_not_interfere(
    alpha_api: TenantApi, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    _, req_fields = await ticket_type(alpha_api, "REQ")
    _, fac_fields = await ticket_type(alpha_api, "FAC")
    first = await new_ticket(alpha_api, "REQ", {"title": "race one"})
    second = await new_ticket(alpha_api, "FAC", {"title": "race two", "category": "WATER"})
    first_values = [f"one-{i}" for i in range(20)]
    second_values = [f"two-{i}" for i in range(20)]

    # Both races at once, all 40 racers queued on the two row locks and released together. Besides them, a few
    # writers send each ticket the other one's etag: it must never match (and so never waits for the lock).
    first_race, second_race, crossed = await gated(
        db,
        LOCK_TICKETS,
        (alpha.id, [uuid.UUID(first["id"]), uuid.UUID(second["id"])]),
        len(first_values) + len(second_values),
        lambda: asyncio.gather(
            race(alpha_api, first["object_id"], first["etag"], req_fields["description"], first_values),
            race(alpha_api, second["object_id"], second["etag"], fac_fields["description"], second_values),
            asyncio.gather(
                race(alpha_api, first["object_id"], second["etag"], req_fields["description"], ["crossed"] * 3),
                race(alpha_api, second["object_id"], first["etag"], fac_fields["description"], ["crossed"] * 3),
            ),
        ),
    )

    assert [(r.status_code, r.json()) for pair in crossed for r in pair] == [(400, ETAG_MISMATCH)] * 6

    for ticket, responses, values, description in (
        (first, first_race, first_values, req_fields["description"]),
        (second, second_race, second_values, fac_fields["description"]),
    ):
        value, new_etag = single_winner(responses, values, ticket)
        shown = (await alpha_api.get(ticket["object_id"])).json()
        assert (shown["etag"], shown["data"][description]) == (new_etag, value)
        assert {k: v for k, v in shown["data"].items() if k != description} == ticket["data"]
        events = await updated_events(db, alpha, ticket["id"])
        assert len(events) == 1
        assert msgspec.json.decode(events[0]["changes"]) == {description: {"old": None, "new": value}}


# --- 6. assignments and updates racing on one etag ---------------------------------------------------------------

ASSIGNERS = 20
UPDATERS = 20


async def events_of(db: asyncpg.Pool, tenant: TenantSpec, ticket_id: str) -> list[asyncpg.Record]:
    """A ticket's events in sequence order, numbered without gaps."""
    await assert_numbered_events(db, tenant.id, [ticket_id])
    return await db.fetch(
        "SELECT kind, changes::text AS changes, assignee, etag FROM ticket_event "
        "WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY sequence",
        tenant.id,
        uuid.UUID(ticket_id),
    )


async def test_assignments_and_updates_with_one_etag_have_exactly_one_winner(
    alpha_api: TenantApi, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    ticket = await new_ticket(alpha_api, "REQ", {"title": "assign or update"})
    _, fields = await ticket_type(alpha_api, "REQ")
    description = fields["description"]
    object_id, etag = ticket["object_id"], ticket["etag"]

    def racers() -> Awaitable[list[httpx.Response]]:
        assigns = [alpha_api.assign(object_id, {"etag": etag, "assignee": f"agent-{i}"}) for i in range(ASSIGNERS)]
        updates = [
            alpha_api.update(object_id, {"etag": etag, "ticketUpdate": {description: f"<p>writer {i}</p>"}})
            for i in range(UPDATERS)
        ]
        return asyncio.gather(*assigns, *updates)

    # All 40 queue on the ticket's row lock and are released together.
    responses = await gated(db, LOCK_TICKETS, (alpha.id, [uuid.UUID(ticket["id"])]), ASSIGNERS + UPDATERS, racers)

    assert Counter(r.status_code for r in responses) == {200: 1, 400: ASSIGNERS + UPDATERS - 1}
    assert all(r.json() == ETAG_MISMATCH for r in responses if r.status_code == 400)
    [(index, winner)] = [(i, r) for i, r in enumerate(responses) if r.status_code == 200]
    new_etag = winner.json()["etag"]
    shown = (await alpha_api.get(object_id)).json()
    assert shown["etag"] == new_etag
    events = await events_of(db, alpha, ticket["id"])
    assert len(events) == 2  # the creation and the one winner
    if index < ASSIGNERS:
        assert winner.json() == {**ASSIGNED, "etag": new_etag, **state_of(ticket), "assignee": f"agent-{index}"}
        assert winner.headers["etag"] == f'"{new_etag}"'
        assert (shown["assignee"], shown["data"]) == (f"agent-{index}", ticket["data"])
        assert (events[1]["kind"], events[1]["assignee"]) == ("ticket.assigned", f"agent-{index}")
    else:
        value = f"<p>writer {index - ASSIGNERS}</p>"
        assert winner.json() == {**UPDATED, "etag": new_etag, **state_of(ticket)}
        assert (shown["assignee"], shown["data"][description]) == (None, value)
        assert (events[1]["kind"], events[1]["assignee"]) == ("ticket.updated", None)
        assert msgspec.json.decode(events[1]["changes"]) == {description: {"old": None, "new": value}}
    assert str(events[1]["etag"]) == new_etag


MIXED_WORKERS = 16
MIXED_WRITES = 12  # per worker, alternating: an assignment, then an increment


async def test_interleaved_assignments_and_updates_under_retry_lose_nothing(
    alpha_api: TenantApi, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    """Every worker reads, then assigns the ticket to itself or increments its counter with that etag, retrying on
    ETAG_MISMATCH: every assignment and every increment lands exactly once, and none undoes another (an update
    keeps the assignee, an assignment keeps the data)."""
    ticket = await new_ticket(alpha_api, "REQ", {"title": "busy"})
    _, fields = await ticket_type(alpha_api, "REQ")
    counter = fields["counter"]
    object_id = ticket["object_id"]
    mismatches = 0
    assigned: list[tuple[str, str]] = []  # (assignee, etag) of each successful assignment

    async def worker(number: int) -> None:
        nonlocal mismatches
        rng = random.Random(number)
        for write in range(MIXED_WRITES):
            while True:
                current = (await alpha_api.get(object_id)).json()
                if write % 2 == 0:
                    assignee = f"worker-{number}-{write}"
                    response = await alpha_api.assign(object_id, {"etag": current["etag"], "assignee": assignee})
                else:
                    value = current["data"][counter]
                    response = await alpha_api.update(
                        object_id, {"etag": current["etag"], "ticketUpdate": {counter: value + 1}}
                    )
                if response.status_code == 200:
                    if write % 2 == 0:
                        assert response.json()["assignee"] == assignee
                        assigned.append((assignee, response.json()["etag"]))
                    break
                assert (response.status_code, response.json()) == (400, ETAG_MISMATCH)
                mismatches += 1
                await asyncio.sleep(rng.uniform(0, 0.02))

    await asyncio.gather(*(worker(number) for number in range(MIXED_WORKERS)))

    assert mismatches > 0, "the writers never collided: the race was not exercised"
    increments = MIXED_WORKERS * MIXED_WRITES // 2
    final = (await alpha_api.get(object_id)).json()
    assert final["data"][counter] == increments
    events = await events_of(db, alpha, ticket["id"])
    assert len(events) == 1 + MIXED_WORKERS * MIXED_WRITES
    assignments = [(e["assignee"], str(e["etag"])) for e in events if e["kind"] == "ticket.assigned"]
    assert sorted(assignments) == sorted(assigned)
    assert len(assignments) == MIXED_WORKERS * MIXED_WRITES // 2
    counts = [msgspec.json.decode(e["changes"])[counter] for e in events if e["kind"] == "ticket.updated"]
    assert counts == [{"old": n, "new": n + 1} for n in range(increments)]
    # Each event carries the assignee of the last assignment before it; the ticket ends with the last one's.
    holder = None
    for event in events:
        if event["kind"] == "ticket.assigned":
            holder = event["assignee"]
        assert event["assignee"] == holder
    assert final["assignee"] == holder == assignments[-1][0]
