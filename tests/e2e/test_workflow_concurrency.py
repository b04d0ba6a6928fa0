"""The status workflow under concurrency, through real servers and real concurrent clients.

Covers:

1. a status change and a field update sent with the same etag, twenty rounds on one ticket: exactly one of them
   wins each round (both kinds do, as the racers are queued in alternating order), the loser gets the exact
   ETAG_MISMATCH body and changes nothing, and the one new ticket_event matches the winner;
2. twenty status changes at once with one etag, to different allowed states named by id or by name in any case:
   one winner, nineteen ETAG_MISMATCH, one event;
3. the pending-close timer of the real `python -m app serve` with WORKERS=2 and a 0.1 s sweep interval: sixty tickets
   of two tenants due at the same instant each move exactly once to the pending-close state's next state, by
   "system", never before their time, while a ticket due later stays put. A gate makes the two workers' sweeps
   start together on the due tickets (they usually split them), and both worker processes are checked to be up
   and sweeping (each names its connections ticketing-<pid> in pg_stat_activity);
4. client updates racing that timer: an update queued on a due ticket's row lock wins and the timer still moves the
   ticket once afterwards (an update does not clear the pending time); updates fired around the due time either win
   (and are kept) or get ETAG_MISMATCH, and an update with the pre-move etag after the move is always refused.

Races 1, 2 and the queued update of 4 are gated: the test holds the ticket's row lock until the racing statements
are all waiting behind it in PostgreSQL (see `gated` in tests/support.py). Every wait polls with a deadline; the
only fixed pause is a few sweep intervals after the last move, for a second move (which must not come) to show.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import msgspec
import pytest

from tests.support import (
    API,
    BETA_ROLES,
    ETAG_MISMATCH,
    GATE_TIMEOUT,
    LOCK_TICKETS,
    POOL_MAX,
    UPDATED,
    WAITING,
    LiveServer,
    Serve,
    TenantApi,
    TenantFactory,
    TenantSpec,
    assert_numbered_events,
    cli_env,
    field_ids,
    free_port,
    gated,
    json_log,
    make_settings,
    named,
)

T = TypeVar("T")
CHANGED = {"success": True, "message": "ticket status changed successfully", "status": 200}
SWEEP_INTERVAL = 0.1  # seconds, the two-worker server's PENDING_CLOSE_INTERVAL_SECONDS
SYSTEM = "system"
TIMER_NOTE = "pending close time reached"
MOVE_TIMEOUT = 30.0  # seconds after the due time for the timer to have moved every ticket
WORKERS_TIMEOUT = 30.0  # seconds for both worker processes to finish start-up
# A text only the pending-close sweep's SQL (CLOSE_DUE) holds; passed as a parameter, so that the queries looking
# for it in pg_stat_activity do not match themselves.
SWEEP_SQL = "%FOR UPDATE OF t SKIP LOCKED%"
# The same for the sweep's first statement, which finds the tenants with due tickets (DUE_TENANTS).
SWEEP_START_SQL = "%SELECT DISTINCT t.tenant_id%"
EVENTS = (
    "SELECT ticket_id, id, kind, changes::text AS changes, actor, request_id, support, etag, created_at, state_id, "
    "pending_until, note FROM ticket_event WHERE tenant_id = $1 AND ticket_id = ANY($2::uuid[]) ORDER BY id"
)
TICKETS = (
    "SELECT id, state_id, pending_until, data::text AS data, etag, updated_by, updated_at FROM ticket "
    "WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
)


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def live(migrated: str, workspace: Path) -> AsyncIterator[LiveServer]:
    # A big pool, so that racing requests each hold their own connection and meet in PostgreSQL. Its own
    # pending-close timer sweeps once at start-up and then sleeps: tests 3 and 4 are about the two-worker server's.
    settings = make_settings(
        migrated, workspace, db_pool_min=8, db_pool_max=POOL_MAX, pending_close_interval_seconds=3600.0
    )
    async with LiveServer(settings) as server:
        yield server


def limits() -> dict[str, Any]:
    return {
        "limits": httpx.Limits(max_connections=64, max_keepalive_connections=64),
        "timeout": httpx.Timeout(60.0, connect=30.0, pool=60.0),
    }


@pytest.fixture(scope="module")
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, **limits()) as client:
        yield client


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # Two gates held at once (test 3) plus the connection that watches the lock queue.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


class TwoWorkers:
    """`python -m app serve` with WORKERS=2 and a fast pending-close timer, and the pids it logged."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.url = serve.url
        self.parent = serve.process.pid
        self.workers: list[int] = []

    def wait_for_workers(self) -> None:
        """Both worker processes have started (uvicorn logs each one's pid) and finished their lifespan start-up,
        which is where each starts its own pending-close timer."""
        deadline = time.monotonic() + WORKERS_TIMEOUT
        while True:
            messages = [r["msg"] for r in self.log()]
            if messages.count("Application startup complete.") >= 2:
                break
            assert self.serve.process.poll() is None, self.serve.stderr
            assert time.monotonic() < deadline, f"the two workers did not start:\n{self.serve.stderr}"
            time.sleep(0.05)
        self.workers = started_pids(messages, "Started server process")
        assert started_pids(messages, "Started parent process") == [self.parent]
        assert len(self.workers) == 2 and len(set(self.workers)) == 2 and self.parent not in self.workers, messages
        self.check_alive()

    def log(self) -> list[dict[str, Any]]:
        """The JSON records of the server's stderr so far, up to the last complete line (the workers are writing)."""
        text = self.serve.stderr
        return json_log(text[: text.rfind("\n") + 1])

    def check_alive(self) -> None:
        """The same two workers are still running, as children of the server process, and none was replaced."""
        assert self.serve.process.poll() is None, self.serve.stderr
        records = self.log()
        messages = [r["msg"] for r in records]
        assert started_pids(messages, "Started server process") == self.workers, messages
        assert not [m for m in messages if "died" in m or "failed to start" in m], messages
        assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], records
        for pid in self.workers:
            assert parent_pid(pid) == self.parent, f"worker {pid} is not a running child of {self.parent}"


def started_pids(messages: list[str], prefix: str) -> list[int]:
    return [int(m) for text in messages if (m := _pid_in(text, prefix)) is not None]


def _pid_in(message: str, prefix: str) -> str | None:
    match = re.fullmatch(rf"{re.escape(prefix)} \[(\d+)\]", message)
    return match.group(1) if match else None


def parent_pid(pid: int) -> int | None:
    """The parent of a running (not zombie) process, from /proc; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    # pid (comm) state ppid ...; comm may hold spaces and parentheses, so split after its last ")".
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state in ("Z", "X") else int(ppid)


@pytest.fixture(scope="module")
async def timer_tenants(tenant_factory: TenantFactory) -> dict[str, TenantSpec]:
    """The tenants of the tests against the two-worker server, each test its own, applied before that server starts:
    both workers read them at start-up (a test could not tell when a sync's notification has reached both)."""
    return {
        "alpha": await tenant_factory.fresh("alpha"),
        "beta": await tenant_factory.fresh("beta", roles=BETA_ROLES),
        "queued": await tenant_factory.fresh("alpha"),
        "racing": await tenant_factory.fresh("alpha"),
    }


@pytest.fixture(scope="module")
def two_workers(
    tenants: list[TenantSpec],
    timer_tenants: dict[str, TenantSpec],
    database_url: str,
    workspace: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TwoWorkers]:
    port = free_port()
    env = cli_env(
        DATABASE_URL=database_url,
        PORT=str(port),
        TENANTS_DIR=str(workspace / "tenants"),
        DATA_DIR=str(workspace / "data"),
        WORKERS="2",
        PENDING_CLOSE_INTERVAL_SECONDS=str(SWEEP_INTERVAL),
    )
    with Serve(env, port, tmp_path_factory.mktemp("two-workers")) as serve:
        server = TwoWorkers(serve)
        server.wait_for_workers()
        yield server
        server.check_alive()
        code = serve.stop()
        assert code == 0, serve.stderr


@pytest.fixture(scope="module")
async def workers_http(two_workers: TwoWorkers) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=two_workers.url, **limits()) as client:
        yield client


# --- helpers ---------------------------------------------------------------------------------------------------


async def status(api: TenantApi, object_id: str, body: dict[str, Any]) -> httpx.Response:
    return await api.http.patch(f"{API}/ticket/{object_id}/status", headers=api.headers, json=body)


async def states(api: TenantApi) -> dict[str, dict[str, Any]]:
    """The tenant's states by name."""
    response = await api.http.get(f"{API}/ticket-state", headers=api.headers)
    assert response.status_code == 200, response.text
    return {state["name"]: state for state in response.json()["data"]}


async def new_ticket(api: TenantApi, prefix: str, data: dict[str, str]) -> dict[str, Any]:
    """Create a ticket of the type with `prefix` (`data` keyed by field key); returns its GET document."""
    found = await api.ticket_type(prefix)
    fields = field_ids(found)
    created = await api.create(str(found["id"]), {fields[key]: value for key, value in data.items()})
    assert created.status_code == 201, created.text
    return await document(api, created.json()["objectId"])


async def document(api: TenantApi, object_id: str) -> dict[str, Any]:
    response = await api.get(object_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def events(db: asyncpg.Pool, tenant: TenantSpec, ticket_ids: Sequence[str]) -> dict[str, list[asyncpg.Record]]:
    """Each ticket's events, oldest first."""
    await assert_numbered_events(db, tenant.id, ticket_ids)
    rows = await db.fetch(EVENTS, tenant.id, [uuid.UUID(t) for t in ticket_ids])
    found: dict[str, list[asyncpg.Record]] = {t: [] for t in ticket_ids}
    for row in rows:
        found[str(row["ticket_id"])].append(row)
    return found


async def rows(db: asyncpg.Pool, tenant: TenantSpec, ticket_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    found = await db.fetch(TICKETS, tenant.id, [uuid.UUID(t) for t in ticket_ids])
    return {str(row["id"]): row for row in found}


def winner_etag(response: httpx.Response, body: dict[str, Any], old_etag: str, state: dict[str, Any]) -> str:
    """The success body is exactly `body` plus a new etag, which it returns, and `state`, named."""
    new_etag = str(response.json()["etag"])
    assert response.json() == {**body, "etag": new_etag, **named(state)}
    assert str(uuid.UUID(new_etag)) == new_etag != old_etag
    return new_etag


def uid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


class Gate:
    """Locks held by a transaction of the test's own until `release` (a rollback): statements needing them queue."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self._conn: asyncpg.Connection | None = None
        self._transaction: Any = None

    async def hold(self, *statements: tuple[str, tuple[Any, ...]]) -> Gate:
        self._conn = await self._db.acquire()
        self._transaction = self._conn.transaction()
        await self._transaction.start()
        for sql, args in statements:
            await self._conn.execute(sql, *args)
        return self

    async def release(self) -> None:
        """Idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self._transaction.rollback()
            finally:
                await self._db.release(conn)


@asynccontextmanager
async def holding(db: asyncpg.Pool, lock_sql: str, *args: Any) -> AsyncIterator[None]:
    """Hold the row locks `lock_sql` takes until the block ends."""
    gate = Gate(db)
    try:
        await gate.hold((lock_sql, args))
        yield
    finally:
        await gate.release()


async def queued(db: asyncpg.Pool, count: int, racers: Sequence[asyncio.Future[Any]]) -> None:
    """Wait until `count` statements of this database wait for a lock."""
    deadline = time.monotonic() + GATE_TIMEOUT
    while (waiting := await db.fetchval(WAITING)) < count:
        assert not any(r.done() for r in racers), "a racer finished while the gate was closed"
        assert time.monotonic() < deadline, f"only {waiting} of {count} statements queued at the gate"
        await asyncio.sleep(0.01)


async def compare_and_swap_queued(db: asyncpg.Pool, update: asyncio.Future[Any]) -> None:
    """Wait until an update's compare-and-swap statement (app/ticket/repository.py) waits for a lock."""
    deadline = time.monotonic() + GATE_TIMEOUT
    while not await db.fetchval(WAITING + " AND query LIKE '%SELECT id, data FROM ticket%'"):
        assert not update.done(), "the update finished while the gate was closed"
        assert time.monotonic() < deadline, "the update's compare-and-swap did not queue at the gate"
        await asyncio.sleep(0.01)


async def in_order(
    db: asyncpg.Pool, lock_sql: str, lock_args: tuple[Any, ...], racers: Sequence[Callable[[], Awaitable[T]]]
) -> list[T]:
    """Like test_concurrency's `gated`, but the racers join the lock queue one after the other, in the given order:
    PostgreSQL then grants the row to them in that order once the gate opens."""
    tasks: list[asyncio.Future[T]] = []
    try:
        async with holding(db, lock_sql, *lock_args):
            for racer in racers:
                tasks.append(asyncio.ensure_future(racer()))
                await queued(db, len(tasks), tasks)
    finally:
        if tasks:
            await asyncio.wait(tasks)
    return [task.result() for task in tasks]


async def sweeps_queued(db: asyncpg.Pool, count: int) -> None:
    """Wait until `count` pending-close sweeps (the statement CLOSE_DUE) wait for a lock."""
    deadline = time.monotonic() + GATE_TIMEOUT
    while (waiting := await db.fetchval(f"{WAITING} AND query LIKE $1", SWEEP_SQL)) < count:
        assert time.monotonic() < deadline, f"only {waiting} of {count} sweeps queued at the gate"
        await asyncio.sleep(0.01)


async def database_now(db: asyncpg.Pool) -> datetime.datetime:
    now: datetime.datetime = await db.fetchval("SELECT now()")
    return now


async def until_database_time(db: asyncpg.Pool, moment: datetime.datetime) -> None:
    """Wait until PostgreSQL's clock (the one the timer compares with) has passed `moment`."""
    deadline = time.monotonic() + MOVE_TIMEOUT + (moment - await database_now(db)).total_seconds()
    while await db.fetchval("SELECT clock_timestamp() <= $1", moment):
        assert time.monotonic() < deadline, "the database clock does not advance"
        await asyncio.sleep(0.02)


async def until_moved(db: asyncpg.Pool, tenant: TenantSpec, ticket_ids: Sequence[str], closed_id: str) -> None:
    """Wait until the timer has moved every one of the tickets to `closed_id`."""
    deadline = time.monotonic() + MOVE_TIMEOUT
    while True:
        moved = await db.fetchval(
            "SELECT count(*) FROM ticket WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND state_id = $3",
            tenant.id,
            [uid(t) for t in ticket_ids],
            uid(closed_id),
        )
        if moved == len(ticket_ids):
            return
        assert time.monotonic() < deadline, f"only {moved} of {len(ticket_ids)} tickets moved"
        await asyncio.sleep(0.05)


async def settle() -> None:
    """Give the timers a few more sweeps after the last move: a ticket moved twice would show up by then."""
    await asyncio.sleep(5 * SWEEP_INTERVAL)


def check_system_move(
    event: asyncpg.Record, ticket: asyncpg.Record, closed_id: str, due: datetime.datetime, after: asyncpg.Record
) -> None:
    """`event` is the timer's move of `ticket` to `closed_id`, not before `due`, and later than `after`."""
    assert event["kind"] == "ticket.status_changed"
    assert (event["actor"], event["note"], event["support"]) == (SYSTEM, TIMER_NOTE, False)
    assert str(event["request_id"]).startswith("pending-close-")
    assert msgspec.json.decode(event["changes"]) == {}
    assert (str(event["state_id"]), event["pending_until"]) == (closed_id, None)
    assert event["etag"] == ticket["etag"]
    assert event["created_at"] >= due, "moved before its pending-close time"
    assert event["created_at"] >= after["created_at"] and event["id"] > after["id"]
    assert (str(ticket["state_id"]), ticket["pending_until"], ticket["updated_by"]) == (closed_id, None, SYSTEM)
    assert ticket["updated_at"] == event["created_at"]


# --- 1. a status change racing an update on the same etag -------------------------------------------------------

ROUNDS = 20


async def test_status_change_and_update_with_one_etag_have_exactly_one_winner_each_round(
    http: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    api = TenantApi.agent(http, alpha, subject="status-vs-update")
    description = field_ids(await api.ticket_type("REQ"))["description"]
    by_name = await states(api)
    # REQ has no workflow: any active state may follow any other. Each round targets a state the ticket is not in.
    targets = [by_name["open"]["id"], by_name["closed"]["id"]]
    state_by_id = {state["id"]: state for state in by_name.values()}
    ticket = await new_ticket(api, "REQ", {"title": "status versus update"})
    object_id = ticket["object_id"]
    [created] = (await events(db, alpha, [ticket["id"]]))[ticket["id"]]
    last_event_id = created["id"]
    winners: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        before = ticket
        target = next(t for t in targets if t != before["state_id"])
        note = f"round {round_}"
        value = f"<p>round {round_}</p>"

        change = functools.partial(status, api, object_id, {"etag": before["etag"], "state": target, "note": note})
        update = functools.partial(
            api.update, object_id, {"etag": before["etag"], "ticketUpdate": {description: value}}
        )

        # Alternate which request queues first on the row lock (PostgreSQL grants it in queue order), so that both
        # kinds win some rounds; the checks below hold whichever wins.
        racers = {"status": change, "update": update}
        order = ["status", "update"] if round_ % 2 == 0 else ["update", "status"]
        results = dict(
            zip(
                order,
                await in_order(db, LOCK_TICKETS, (alpha.id, [uid(ticket["id"])]), [racers[k] for k in order]),
                strict=True,
            )
        )

        assert sorted(r.status_code for r in results.values()) == [200, 400], {k: r.text for k, r in results.items()}
        [winner] = [kind for kind, r in results.items() if r.status_code == 200]
        [loser] = [kind for kind, r in results.items() if r.status_code == 400]
        winners[winner] += 1
        assert results[loser].json() == ETAG_MISMATCH
        if winner == "status":
            new_etag = winner_etag(results[winner], CHANGED, before["etag"], state_by_id[target])
        else:
            new_etag = winner_etag(results[winner], UPDATED, before["etag"], state_by_id[before["state_id"]])

        ticket = await document(api, object_id)
        assert ticket["etag"] == new_etag
        assert (ticket["updated_by"], ticket["pending_until"]) == ("status-vs-update", None)
        if winner == "status":
            # The update lost: the data is as before, the state is the change's.
            assert (ticket["state_id"], ticket["data"]) == (target, before["data"])
        else:
            assert (ticket["state_id"], ticket["data"]) == (before["state_id"], {**before["data"], description: value})

        new_events = [e for e in (await events(db, alpha, [ticket["id"]]))[ticket["id"]] if e["id"] > last_event_id]
        assert len(new_events) == 1, [dict(e) for e in new_events]
        [event] = new_events
        last_event_id = event["id"]
        assert (str(event["etag"]), event["actor"], event["pending_until"]) == (new_etag, "status-vs-update", None)
        if winner == "status":
            assert (event["kind"], str(event["state_id"]), event["note"]) == ("ticket.status_changed", target, note)
            assert msgspec.json.decode(event["changes"]) == {}
        else:
            assert (event["kind"], str(event["state_id"]), event["note"]) == (
                "ticket.updated",
                before["state_id"],
                None,
            )
            old = before["data"].get(description)
            assert msgspec.json.decode(event["changes"]) == {description: {"old": old, "new": value}}

    assert sum(winners.values()) == ROUNDS
    all_events = (await events(db, alpha, [ticket["id"]]))[ticket["id"]]
    assert len(all_events) == 1 + ROUNDS
    assert Counter(e["kind"] for e in all_events[1:]) == {
        "ticket.status_changed": winners["status"],
        "ticket.updated": winners["update"],
    }


# --- 2. many status changes with one etag ------------------------------------------------------------------------

CHANGERS = 20


async def test_twenty_simultaneous_status_changes_with_one_etag_have_exactly_one_winner(
    http: httpx.AsyncClient, beta: TenantSpec, db: asyncpg.Pool
) -> None:
    api = TenantApi.agent(http, beta, subject="status-racer")
    by_name = await states(api)
    ticket = await new_ticket(api, "FAC", {"category": "WATER", "title": "twenty movers"})
    assert ticket["state_id"] == by_name["PENDING"]["id"]
    # PENDING may move to IN_PROGRESS or CANCELLED: half the clients want each, naming it by id or by name in
    # any case; each sends its own note, so the stored event says which client won.
    allowed = [by_name["IN_PROGRESS"], by_name["CANCELLED"]]
    wanted = [allowed[i % 2] for i in range(CHANGERS)]
    spelled = [[state["id"], state["name"].lower(), state["name"].title()][i % 3] for i, state in enumerate(wanted)]
    notes = [f"mover {i}" for i in range(CHANGERS)]

    responses = await gated(
        db,
        LOCK_TICKETS,
        (beta.id, [uid(ticket["id"])]),
        CHANGERS,
        lambda: asyncio.gather(
            *(
                status(api, ticket["object_id"], {"etag": ticket["etag"], "state": state, "note": note})
                for state, note in zip(spelled, notes, strict=True)
            )
        ),
    )

    assert Counter(r.status_code for r in responses) == {200: 1, 400: CHANGERS - 1}, [r.text for r in responses]
    assert [r.json() for r in responses if r.status_code == 400] == [ETAG_MISMATCH] * (CHANGERS - 1)
    [won] = [i for i, r in enumerate(responses) if r.status_code == 200]
    new_etag = winner_etag(responses[won], CHANGED, ticket["etag"], wanted[won])

    after = await document(api, ticket["object_id"])
    assert (after["etag"], after["state_id"], after["data"]) == (new_etag, wanted[won]["id"], ticket["data"])
    assert after["updated_by"] == "status-racer"
    history = (await events(db, beta, [ticket["id"]]))[ticket["id"]]
    assert [e["kind"] for e in history] == ["ticket.created", "ticket.status_changed"]
    moved = history[1]
    assert (str(moved["etag"]), str(moved["state_id"]), moved["note"], moved["actor"]) == (
        new_etag,
        wanted[won]["id"],
        notes[won],
        "status-racer",
    )


# --- 3. the pending-close timer with two worker processes --------------------------------------------------------

PER_TENANT = 30
DUE_IN = 3.0  # seconds: time enough for the 60 status changes to be accepted before it


async def create_many(api: TenantApi, count: int, title: str) -> list[dict[str, Any]]:
    """`count` new REQ tickets, created concurrently; their GET documents."""
    return list(await asyncio.gather(*(new_ticket(api, "REQ", {"title": f"{title} {i}"}) for i in range(count))))


async def to_pending_close(api: TenantApi, tickets: list[dict[str, Any]], due: datetime.datetime) -> dict[str, Any]:
    """Move the tickets to "pending close" until `due`, concurrently, noting each one's new etag as "pending_etag";
    returns the tenant's pending-close state."""
    pending = (await states(api))["pending close"]
    responses = await asyncio.gather(
        *(
            status(
                api,
                t["object_id"],
                {"etag": t["etag"], "state": "Pending Close", "pendingUntil": due.isoformat(), "note": "wait"},
            )
            for t in tickets
        )
    )
    for ticket, response in zip(tickets, responses, strict=True):
        assert response.status_code == 200, response.text
        ticket["pending_etag"] = winner_etag(response, CHANGED, ticket["etag"], pending)
    return pending


def from_now(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


async def test_pending_close_timer_moves_each_due_ticket_exactly_once_with_two_workers(
    two_workers: TwoWorkers,
    workers_http: httpx.AsyncClient,
    timer_tenants: dict[str, TenantSpec],
    db: asyncpg.Pool,
) -> None:
    alpha, beta = timer_tenants["alpha"], timer_tenants["beta"]
    apis = {alpha.slug: TenantApi.agent(workers_http, alpha, subject="timer-agent")}
    apis[beta.slug] = TenantApi.agent(workers_http, beta, subject="timer-agent")
    for tenant in (alpha, beta):
        by_name = await states(apis[tenant.slug])
        closed = next(s for s in by_name.values() if s["id"] == by_name["pending close"]["next_state_id"])
        assert closed["name"] == "closed"
    alpha_tickets, beta_tickets, [not_due] = await asyncio.gather(
        create_many(apis[alpha.slug], PER_TENANT, "due"),
        create_many(apis[beta.slug], PER_TENANT, "due"),
        create_many(apis[alpha.slug], 1, "due later"),
    )
    # All due at the same instant, so that both workers' sweeps find them at once.
    due = from_now(DUE_IN)
    later = due + datetime.timedelta(hours=1)
    alpha_pending, beta_pending, _later = await asyncio.gather(
        to_pending_close(apis[alpha.slug], alpha_tickets, due),
        to_pending_close(apis[beta.slug], beta_tickets, due),
        to_pending_close(apis[alpha.slug], [not_due], later),
    )
    groups = ((alpha, alpha_tickets, alpha_pending), (beta, beta_tickets, beta_pending))

    # Make the two workers' sweeps start together on the due tickets. While the test holds the tickets' rows, the
    # sweeps skip them (SKIP LOCKED) and move nothing, even once they are due. After the due time a second gate
    # takes ticket_event in SHARE mode: every sweep starting from then on (so seeing the tickets due: its now() is
    # its start) waits for it before touching any row. Then the rows are let go, and once two sweeps queue (one
    # per worker: each runs one at a time) the gate opens for both. They usually split the tickets between them.
    rows_gate, table_gate = Gate(db), Gate(db)
    try:
        await rows_gate.hold(
            *((LOCK_TICKETS, (tenant.id, [uid(t["id"]) for t in tickets])) for tenant, tickets, _ in groups)
        )
        assert await database_now(db) < due, f"setting up took longer than DUE_IN ({DUE_IN} s)"
        await until_database_time(db, due + datetime.timedelta(seconds=5 * SWEEP_INTERVAL))
        for tenant, tickets, pending in groups:
            unmoved = await rows(db, tenant, [t["id"] for t in tickets])
            assert {(str(r["state_id"]), str(r["etag"])) for r in unmoved.values()} == {
                (pending["id"], t["pending_etag"]) for t in tickets
            }
        await table_gate.hold(("LOCK TABLE ticket_event IN SHARE MODE", ()))
        await rows_gate.release()
        await sweeps_queued(db, 2)
    finally:
        await rows_gate.release()
        await table_gate.release()

    for tenant, tickets, pending in groups:
        await until_moved(db, tenant, [t["id"] for t in tickets], pending["next_state_id"])
    await settle()
    two_workers.check_alive()

    for tenant, tickets, pending in groups:
        ids = [t["id"] for t in tickets]
        closed_id = pending["next_state_id"]
        stored = await rows(db, tenant, ids)
        history = await events(db, tenant, ids)
        for ticket in tickets:
            row, [created, waiting, *rest] = stored[ticket["id"]], history[ticket["id"]]
            assert created["kind"] == "ticket.created"
            # The client's own change: into pending close until `due`.
            assert (waiting["kind"], waiting["actor"], str(waiting["etag"])) == (
                "ticket.status_changed",
                "timer-agent",
                ticket["pending_etag"],
            )
            assert (str(waiting["state_id"]), waiting["pending_until"]) == (pending["id"], due)
            # Exactly one move by the timer, and nothing else.
            assert len(rest) == 1, [dict(e) for e in rest]
            check_system_move(rest[0], row, closed_id, due, waiting)
            assert msgspec.json.decode(row["data"]) == ticket["data"]
            shown = await document(apis[tenant.slug], ticket["object_id"])
            assert (shown["state_id"], shown["pending_until"], shown["updated_by"], shown["lastUpdatedBy"]) == (
                closed_id,
                None,
                SYSTEM,
                SYSTEM,
            )
            assert shown["etag"] == str(row["etag"])

    # The ticket due in an hour has not moved.
    [later_row] = (await rows(db, alpha, [not_due["id"]])).values()
    assert (str(later_row["state_id"]), later_row["pending_until"]) == (alpha_pending["id"], later)
    assert str(later_row["etag"]) == not_due["pending_etag"]
    assert len((await events(db, alpha, [not_due["id"]]))[not_due["id"]]) == 2

    await check_both_workers_sweep(two_workers, db)


async def check_both_workers_sweep(server: TwoWorkers, db: asyncpg.Pool) -> None:
    """Each worker process holds a database connection whose latest statement is part of the pending-close sweep: both
    timers run. A worker names its connections `ticketing-<pid>` (application_name), and with no request coming in
    the pool keeps handing each worker's sweeps the connection it returned last."""
    expected = {f"ticketing-{pid}" for pid in server.workers}
    deadline = time.monotonic() + MOVE_TIMEOUT
    while True:
        sweeping = {
            row["application_name"]
            for row in await db.fetch(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
                "AND (query LIKE $1 OR query LIKE $2)",
                SWEEP_SQL,
                SWEEP_START_SQL,
            )
        }
        if expected <= sweeping:
            return
        assert time.monotonic() < deadline, f"sweeping connections {sweeping}, workers {expected}"
        await asyncio.sleep(0.1)


# --- 4. a client write racing the timer --------------------------------------------------------------------------


async def test_update_queued_on_a_due_ticket_wins_and_the_timer_still_moves_it_once(
    two_workers: TwoWorkers, workers_http: httpx.AsyncClient, timer_tenants: dict[str, TenantSpec], db: asyncpg.Pool
) -> None:
    tenant = timer_tenants["queued"]
    api = TenantApi.agent(workers_http, tenant, subject="timer-racer")
    description = field_ids(await api.ticket_type("REQ"))["description"]
    [ticket] = await create_many(api, 1, "queued update")
    due = from_now(1.5)
    pending = await to_pending_close(api, [ticket], due)
    closed_id = pending["next_state_id"]

    # The test holds the row while the ticket falls due: the timers' sweeps skip it (SKIP LOCKED) for several
    # rounds. Then a client update with the pending etag queues on the lock. Queued, it holds PostgreSQL's tuple
    # lock, so the sweeps keep skipping the row until the update has committed: the client wins, every time.
    async with holding(db, LOCK_TICKETS, tenant.id, [uid(ticket["id"])]):
        await until_database_time(db, due + datetime.timedelta(seconds=5 * SWEEP_INTERVAL))
        [row] = (await rows(db, tenant, [ticket["id"]])).values()
        assert (str(row["etag"]), str(row["state_id"])) == (ticket["pending_etag"], pending["id"])
        update = asyncio.ensure_future(
            api.update(
                ticket["object_id"], {"etag": ticket["pending_etag"], "ticketUpdate": {description: "<p>kept</p>"}}
            )
        )
        # This update's own statement in the lock queue: `queued` counts any waiter, and a background statement
        # of the workers waiting a moment could open the gate before the update had joined the queue.
        await compare_and_swap_queued(db, update)
    response = await update

    updated_etag = winner_etag(response, UPDATED, ticket["pending_etag"], pending)
    await until_moved(db, tenant, [ticket["id"]], closed_id)
    await settle()
    [row] = (await rows(db, tenant, [ticket["id"]])).values()
    [_, waiting, updated, *rest] = (await events(db, tenant, [ticket["id"]]))[ticket["id"]]
    # The update kept the ticket pending close until `due`; the timer then moved it, once.
    assert (updated["kind"], str(updated["etag"]), updated["actor"]) == ("ticket.updated", updated_etag, "timer-racer")
    assert (str(updated["state_id"]), updated["pending_until"]) == (pending["id"], due)
    assert msgspec.json.decode(updated["changes"]) == {description: {"old": None, "new": "<p>kept</p>"}}
    assert len(rest) == 1, [dict(e) for e in rest]
    check_system_move(rest[0], row, closed_id, due, updated)
    assert updated["id"] > waiting["id"]
    assert msgspec.json.decode(row["data"])[description] == "<p>kept</p>"

    # The etag the client last saw is now stale: its next write is refused and changes nothing.
    stale = await api.update(ticket["object_id"], {"etag": updated_etag, "ticketUpdate": {description: "<p>no</p>"}})
    assert (stale.status_code, stale.json()) == (400, ETAG_MISMATCH)
    assert (await rows(db, tenant, [ticket["id"]]))[ticket["id"]]["etag"] == row["etag"]


RACERS = 24


async def test_updates_fired_around_the_due_time_either_win_or_lose_cleanly(
    two_workers: TwoWorkers, workers_http: httpx.AsyncClient, timer_tenants: dict[str, TenantSpec], db: asyncpg.Pool
) -> None:
    tenant = timer_tenants["racing"]
    api = TenantApi.agent(workers_http, tenant, subject="timer-racer")
    description = field_ids(await api.ticket_type("REQ"))["description"]
    tickets = await create_many(api, RACERS, "racing update")
    due = from_now(2)
    pending = await to_pending_close(api, tickets, due)
    closed_id = pending["next_state_id"]
    ids = [t["id"] for t in tickets]

    async def racer(index: int, ticket: dict[str, Any]) -> httpx.Response:
        # Spread from a little before the due time to a few sweeps after it (the database runs on this host).
        fire = due + datetime.timedelta(seconds=-0.1 + index * 0.4 / RACERS)
        await asyncio.sleep(max(0.0, (fire - datetime.datetime.now(datetime.UTC)).total_seconds()))
        return await api.update(
            ticket["object_id"], {"etag": ticket["pending_etag"], "ticketUpdate": {description: f"<p>{index}</p>"}}
        )

    responses = await asyncio.gather(*(racer(i, t) for i, t in enumerate(tickets)))
    await until_moved(db, tenant, ids, closed_id)
    await settle()

    stored = await rows(db, tenant, ids)
    history = await events(db, tenant, ids)
    outcomes: Counter[str] = Counter()
    for index, (ticket, response) in enumerate(zip(tickets, responses, strict=True)):
        row, [_, waiting, *rest] = stored[ticket["id"]], history[ticket["id"]]
        data = msgspec.json.decode(row["data"])
        if response.status_code == 200:
            # The client won: its write is kept, and the timer moved the ticket afterwards, once.
            outcomes["client first"] += 1
            updated_etag = winner_etag(response, UPDATED, ticket["pending_etag"], pending)
            assert len(rest) == 2, [dict(e) for e in rest]
            updated, moved = rest
            assert (updated["kind"], str(updated["etag"]), str(updated["state_id"])) == (
                "ticket.updated",
                updated_etag,
                pending["id"],
            )
            assert updated["pending_until"] == due
            assert data[description] == f"<p>{index}</p>"
            check_system_move(moved, row, closed_id, due, updated)
        else:
            # The timer won: the client's write was refused and left no trace.
            outcomes["timer first"] += 1
            assert (response.status_code, response.json()) == (400, ETAG_MISMATCH)
            assert len(rest) == 1, [dict(e) for e in rest]
            assert data == ticket["data"]
            check_system_move(rest[0], row, closed_id, due, waiting)
        # Either way, the etag from before the move is stale now.
        stale = await api.update(
            ticket["object_id"], {"etag": ticket["pending_etag"], "ticketUpdate": {description: "<p>late</p>"}}
        )
        assert (stale.status_code, stale.json()) == (400, ETAG_MISMATCH)
    assert sum(outcomes.values()) == RACERS, outcomes
    assert {str(r["etag"]) for r in (await rows(db, tenant, ids)).values()} == {str(r["etag"]) for r in stored.values()}
