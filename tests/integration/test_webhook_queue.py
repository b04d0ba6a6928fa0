"""A delivery queue's order, held by the statement that records a success and claims the next delivery of the same
(subscription, ticket) queue at once (app/webhook/delivery.py sends a busy ticket's events one after another with
it, without a claim round between them). Run on the real database; each test's rows stay in a transaction that is
rolled back, out of sight of the delivery worker that the session's server runs on the same database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from app.db.database import Database
from app.webhook import repository as webhook_repository
from app.webhook.delivery import Attempt, DeliveryPolicy, DeliveryWorker
from app.webhook.repository import ClaimedDelivery, DeliveryRow, NewDelivery, Success, WebhookRepository
from tests.support import TenantSpec

LEASE_SECONDS = 30.0
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
HORIZON_SECONDS = 3600.0


class _Undo(Exception):
    pass


@pytest.fixture
async def db(migrated: str) -> AsyncIterator[Database]:
    database = Database(migrated, min_size=1, max_size=1)
    await database.open()
    yield database
    await database.close()


@contextlib.asynccontextmanager
async def uncommitted(db: Database) -> AsyncIterator[WebhookRepository]:
    """A repository whose every statement runs in one transaction, rolled back at the end (`now()` is the
    transaction's start throughout: queued deliveries are due, a claim's lease is in the future)."""
    with contextlib.suppress(_Undo):
        async with db.transaction():
            yield WebhookRepository(db)
            raise _Undo


async def subscription(repository: WebhookRepository, tenant: TenantSpec) -> uuid.UUID:
    row = await repository.insert(
        tenant.id, uuid.uuid4(), "https://hooks.example.com/in", None, "queue test", True, "whsec_x", "test"
    )
    return row.id


def event(subscription_id: uuid.UUID, ticket_id: uuid.UUID, sequence: int) -> NewDelivery:
    return NewDelivery(
        uuid.uuid4(), subscription_id, f"evt_{sequence}", "ticket.updated", sequence, ticket_id, sequence, "{}"
    )


async def queue(
    repository: WebhookRepository,
    tenant: TenantSpec,
    subscription_id: uuid.UUID,
    ticket: uuid.UUID,
    *sequences: int,
    behind_failing_heads: bool = False,
) -> list[uuid.UUID]:
    """Queue one ticket's events of these sequences, in this order, in one statement; the ones that wait."""
    deliveries = [event(subscription_id, ticket, sequence) for sequence in sequences]
    return await repository.queue(tenant.id, deliveries, HORIZON_SECONDS, behind_failing_heads=behind_failing_heads)


async def delivered_then_next(
    repository: WebhookRepository, tenant: TenantSpec, delivery: ClaimedDelivery
) -> ClaimedDelivery | None:
    claimed = await repository.delivered_claim_next(tenant.id, [Success(delivery, 200, 3, "ok")], LEASE_SECONDS)
    assert len(claimed) <= 1, claimed
    return claimed[0] if claimed else None


async def status_of(repository: WebhookRepository, tenant: TenantSpec, subscription_id: uuid.UUID) -> list[str]:
    rows = await repository.deliveries(tenant.id, subscription_id, 100, 0)
    return [f"{row.message_id}:{row.status}:{row.attempts}" for row in sorted(rows, key=lambda r: r.sequence or 0)]


async def test_a_success_claims_the_next_delivery_of_its_queue_in_sequence_order(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket, other_ticket = uuid.uuid4(), uuid.uuid4()
        await repository.queue(
            alpha.id,
            [
                event(hooked, ticket, 1),
                event(hooked, other_ticket, 1),
                event(hooked, ticket, 2),
                event(hooked, ticket, 3),
            ],
            HORIZON_SECONDS,
        )
        # One claim round: the head of each queue, never a delivery behind its head.
        claimed = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert sorted((c.ticket_id == ticket, c.message_id) for c in claimed) == [(False, "evt_1"), (True, "evt_1")]
        first = next(c for c in claimed if c.ticket_id == ticket)

        second = await delivered_then_next(repository, alpha, first)
        assert second is not None and (second.ticket_id, second.message_id, second.attempts) == (ticket, "evt_2", 1)
        # The claimed next one is leased: no claim round hands it out again meanwhile.
        assert await repository.claim(alpha.id, 10, LEASE_SECONDS) == []

        third = await delivered_then_next(repository, alpha, second)
        assert third is not None and third.message_id == "evt_3"
        assert await delivered_then_next(repository, alpha, third) is None  # the queue is empty
        statuses = await status_of(repository, alpha, hooked)
        assert sorted(statuses) == ["evt_1:delivered:1", "evt_1:pending:1", "evt_2:delivered:1", "evt_3:delivered:1"]


async def test_successes_recorded_together_each_claim_the_next_delivery_of_their_own_queue(
    db: Database, alpha: TenantSpec
) -> None:
    """Several delivery tasks' successes in one statement (SuccessRecorder): each is recorded and claims its own
    queue's next delivery; one whose attempt had lost its lease records nothing and claims nothing, and does not
    stop the others."""
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        tickets = [uuid.uuid4() for _ in range(4)]
        for ticket in tickets:
            await queue(repository, alpha, hooked, ticket, 1, 2)
        heads = {head.ticket_id: head for head in await repository.claim(alpha.id, 10, LEASE_SECONDS)}
        assert set(heads) == set(tickets)
        outlived = msgspec.structs.replace(heads[tickets[3]], attempts=0)  # another worker took it over
        # A NULL among the responses (the column allows it): the arrays carry it to its own row.
        responses = ["ok 0", None, "ok 2"]
        successes = [Success(heads[ticket], 200 + n, n, responses[n]) for n, ticket in enumerate(tickets[:3])]
        claimed = await repository.delivered_claim_next(
            alpha.id, [*successes, Success(outlived, 200, 1, "late")], LEASE_SECONDS
        )
        assert sorted((c.ticket_id, c.message_id, c.attempts) for c in claimed) == sorted(
            (ticket, "evt_2", 1) for ticket in tickets[:3]
        )
        rows = {(row.ticket_id, row.message_id): row for row in await repository.deliveries(alpha.id, hooked, 100, 0)}
        for n, ticket in enumerate(tickets[:3]):
            first = rows[(ticket, "evt_1")]
            assert (first.status, first.last_status_code, first.last_latency_ms) == ("delivered", 200 + n, n)
            assert first.last_response == responses[n]
        # The outlived attempt's delivery is as the claim left it, and its successor still waits behind it.
        untouched = rows[(tickets[3], "evt_1")]
        assert (untouched.status, untouched.attempts, untouched.last_response) == ("pending", 1, None)
        assert rows[(tickets[3], "evt_2")].attempts == 0 and rows[(tickets[3], "evt_2")].next_attempt_at is None
        # Two successes of one queue in a statement would both claim its next delivery: refused.
        with pytest.raises(ValueError, match="at most one success of each queue"):
            await repository.delivered_claim_next(alpha.id, [successes[0], successes[0]], LEASE_SECONDS)


async def test_successes_of_one_ticket_for_several_subscriptions_each_claim_their_own_next(
    db: Database, alpha: TenantSpec
) -> None:
    """One ticket's events go to three subscriptions, each its own queue: recorded together, each claims its own
    next delivery, with its own subscription's address and secret; the one switched off meanwhile claims nothing,
    and its next delivery, which waited behind the head, is made due for when it is on again."""
    async with uncommitted(db) as repository:
        ticket = uuid.uuid4()
        hooks = []
        for n in range(3):
            row = await repository.insert(
                alpha.id, uuid.uuid4(), f"https://hooks{n}.example.com/in", None, "queue test", True, f"whsec_{n}", "t"
            )
            hooks.append(row.id)
            await queue(repository, alpha, row.id, ticket, 1, 2)
        heads = {head.subscription_id: head for head in await repository.claim(alpha.id, 10, LEASE_SECONDS)}
        assert set(heads) == set(hooks)
        await repository.update(alpha.id, hooks[2], "https://hooks2.example.com/in", None, "paused", False, "test")
        claimed = await repository.delivered_claim_next(
            alpha.id, [Success(heads[hook], 200, 1, "ok") for hook in hooks], LEASE_SECONDS
        )
        assert sorted((c.subscription_id, c.message_id, c.url, c.secret) for c in claimed) == sorted(
            (hooks[n], "evt_2", f"https://hooks{n}.example.com/in", f"whsec_{n}") for n in range(2)
        )
        for hook in hooks:
            assert sorted(await status_of(repository, alpha, hook)) == [
                "evt_1:delivered:1",
                f"evt_2:pending:{0 if hook == hooks[2] else 1}",
            ]
        assert await waiting_of(repository, alpha, hooks[2]) == ["evt_2:scheduled"]


async def test_the_next_delivery_is_the_queues_head_a_replayed_earlier_event_first(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 5, 6)
        [head] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        # A replay queues sequence 2 while 5 is in flight: after 5, the queue's head is 2, not 6.
        await queue(repository, alpha, hooked, ticket, 2)
        following = await delivered_then_next(repository, alpha, head)
        assert following is not None and following.message_id == "evt_2"
        assert await status_of(repository, alpha, hooked) == ["evt_2:pending:1", "evt_5:delivered:1", "evt_6:pending:0"]


async def test_an_earlier_event_queued_while_one_is_in_flight_waits_for_that_attempt_to_end(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 5, 6)
        [five] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        # A replayed sequence 2, queued while 5 is in flight, is the queue's head, but no claim round sends it
        # while 5's attempt is under way: one queue never has two.
        await queue(repository, alpha, hooked, ticket, 2)
        assert await repository.claim(alpha.id, 10, LEASE_SECONDS) == []
        # 5 succeeds: 2 is claimed with the success, then 6 with 2's.
        two = await delivered_then_next(repository, alpha, five)
        assert two is not None and two.message_id == "evt_2"
        six = await delivered_then_next(repository, alpha, two)
        assert six is not None and six.message_id == "evt_6"
        assert await status_of(repository, alpha, hooked) == [
            "evt_2:delivered:1",
            "evt_5:delivered:1",
            "evt_6:pending:1",
        ]


async def test_an_earlier_event_waiting_for_an_attempt_whose_worker_died_is_due_when_its_lease_ends(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 5)
        [five] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        await queue(repository, alpha, hooked, ticket, 2, 3)
        # 5's worker dies: no outcome is ever recorded. Once its lease has run out (moved into the past here, as the
        # transaction's clock stands still), 2, waiting until then, is the queue's head and due; 5 is behind it.
        await db.execute(
            "UPDATE webhook_delivery SET next_attempt_at = next_attempt_at - interval '1 hour', "
            "leased_until = leased_until - interval '1 hour' WHERE tenant_id = $1 AND message_id IN ('evt_5', 'evt_2')",
            alpha.id,
        )
        [two] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert two.message_id == "evt_2"
        three = await delivered_then_next(repository, alpha, two)
        assert three is not None and three.message_id == "evt_3"
        again = await delivered_then_next(repository, alpha, three)
        assert again is not None and (again.id, again.attempts) == (five.id, 2)


async def test_a_failed_attempt_ends_its_flight_and_the_earlier_event_goes_first(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 5)
        [five] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        await queue(repository, alpha, hooked, ticket, 2)
        assert await repository.claim(alpha.id, 10, LEASE_SECONDS) == []
        await fail(repository, alpha, five, "pending")  # retried in a minute: no longer in flight
        [two] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert two.message_id == "evt_2"


async def test_a_retry_keeps_an_attempt_in_flight_and_a_delivery_waiting_for_its_turn(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 1, 2)
        [one] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        waiting = next(row for row in await repository.deliveries(alpha.id, hooked, 10, 0) if row.sequence == 2)
        lease_end = await db.fetch_value("SELECT now() + make_interval(secs => $1::float8)", LEASE_SECONDS)
        in_flight = await repository.retry(alpha.id, hooked, one.id, HORIZON_SECONDS)
        behind = await repository.retry(alpha.id, hooked, waiting.id, HORIZON_SECONDS)
        assert in_flight is not None and behind is not None
        assert (in_flight.next_attempt_at, behind.next_attempt_at) == (lease_end, None)  # leased; still waiting
        assert await repository.claim(alpha.id, 10, LEASE_SECONDS) == []  # not sent a second time meanwhile
        two = await delivered_then_next(repository, alpha, one)
        assert two is not None and two.message_id == "evt_2"
        # A delivered one, retried while 2 is in flight, waits for 2's attempt (at most until its lease ends), then
        # goes as the queue's head.
        again = await repository.retry(alpha.id, hooked, one.id, HORIZON_SECONDS)
        assert again is not None and (again.status, again.next_attempt_at) == ("pending", lease_end)
        assert await repository.claim(alpha.id, 10, LEASE_SECONDS) == []
        resent = await delivered_then_next(repository, alpha, two)
        assert resent is not None and (resent.message_id, resent.attempts) == ("evt_1", 2)


async def test_a_delivery_retried_behind_the_attempt_in_flight_follows_it_at_once(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 5)
        [five] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert await delivered_then_next(repository, alpha, five) is None
        await queue(repository, alpha, hooked, ticket, 2)  # a replay: nothing in flight, due at once
        [two] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        # 5, retried while 2 is in flight, is behind it: it waits like any successor and follows 2's success.
        retried = await repository.retry(alpha.id, hooked, five.id, HORIZON_SECONDS)
        assert retried is not None and (retried.status, retried.next_attempt_at) == ("pending", None)
        again = await delivered_then_next(repository, alpha, two)
        assert again is not None and (again.id, again.attempts) == (five.id, 2)


async def test_a_retry_makes_a_failed_or_dead_delivery_due_now(db: Database, alpha: TenantSpec) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        for outcome in ("pending", "dead"):
            await queue(repository, alpha, hooked, uuid.uuid4(), 1)
            [head] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
            await fail(repository, alpha, head, outcome)  # a failure retried in a minute, or dead-lettered
            assert await repository.claim(alpha.id, 10, LEASE_SECONDS) == []
            retried = await repository.retry(alpha.id, hooked, head.id, HORIZON_SECONDS)
            assert retried is not None and (retried.status, retried.attempts) == ("pending", 1), outcome
            [again] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
            assert (again.id, again.attempts) == (head.id, 2), outcome


async def test_a_failure_after_a_manual_retry_backs_off_from_the_base_within_the_fresh_horizon(
    db: Database, alpha: TenantSpec
) -> None:
    policy = DeliveryPolicy(
        allow_loopback=False,
        concurrency=1,
        poll_seconds=1.0,
        connect_timeout_seconds=1.0,
        timeout_seconds=1.0,
        retry_base_seconds=10.0,
        retry_max_seconds=1000.0,
        horizon_seconds=HORIZON_SECONDS,
        disable_after_seconds=HORIZON_SECONDS,
    )
    failed = Attempt(500, 3, "HTTP 500", "no", None)
    async with uncommitted(db) as repository:
        worker = DeliveryWorker(db, repository, policy)
        hooked = await subscription(repository, alpha)
        for retried_during_the_attempt in (False, True):
            await queue(repository, alpha, hooked, uuid.uuid4(), 1)
            # A long history: six failed attempts, and its retry horizon about to end.
            await db.execute(
                "UPDATE webhook_delivery SET attempts = 6, expires_at = now() + interval '1 second' "
                "WHERE tenant_id = $1 AND subscription_id = $2 AND status = 'pending'",
                alpha.id,
                hooked,
            )
            [head] = await repository.claim(alpha.id, 10, LEASE_SECONDS)  # the seventh attempt, under way
            if retried_during_the_attempt:
                assert await repository.retry(alpha.id, hooked, head.id, HORIZON_SECONDS) is not None
            status = await worker._record_failure(alpha.id, head, failed)
            row = await repository.delivery(alpha.id, hooked, head.id)
            assert row is not None and row.status == status
            if retried_during_the_attempt:
                # A fresh horizon, and the backoff from the base (half to all of 10 s), not 2^6 x 10 s.
                assert row.status == "pending" and row.next_attempt_at is not None
                started = await db.fetch_value("SELECT now()")  # the transaction's start: RECORD_OUTCOME's now()
                assert 5.0 <= (row.next_attempt_at - started).total_seconds() <= 10.0
            else:
                assert row.status == "dead"  # 320 s or more of backoff is past its horizon


async def until_blocking(watcher: asyncpg.Connection, pid: int) -> None:
    """Until another session waits for a lock the session `pid` holds (the database says so: nothing to await)."""
    for _ in range(2000):
        if await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing waited for session {pid}")


async def test_a_retry_while_a_failure_is_being_recorded_waits_for_it_and_makes_the_delivery_due(
    migrated: str, alpha: TenantSpec
) -> None:
    """Committed, on two connections: the failure's transaction holds the delivery while the retry comes."""
    db = Database(migrated, min_size=2, max_size=2)
    await db.open()
    watcher = await asyncpg.connect(migrated)
    repository = WebhookRepository(db)
    # Switched off: the session's delivery workers claim nothing of it.
    hooked = (
        await repository.insert(
            alpha.id, uuid.uuid4(), "https://hooks.example.com/in", None, "race test", False, "whsec_x", "test"
        )
    ).id
    try:
        delivery = event(hooked, uuid.uuid4(), 1)
        await repository.queue(alpha.id, [delivery], HORIZON_SECONDS)
        await db.execute(  # its first attempt under way, as a claim leaves it
            "UPDATE webhook_delivery SET attempts = 1, leased_until = now() + interval '30 seconds', "
            "next_attempt_at = now() + interval '30 seconds' WHERE tenant_id = $1 AND id = $2",
            alpha.id,
            delivery.id,
        )
        attempt = ClaimedDelivery(
            delivery.id,
            hooked,
            delivery.ticket_id,
            delivery.message_id,
            "{}",
            1,
            NOW,
            "https://x",
            "whsec_x",
            None,
            None,
            None,
        )
        locked = asyncio.Event()

        async def record_the_failure() -> None:
            async with db.transaction():
                assert await repository.lock_failed_attempt(alpha.id, attempt) is not None
                locked.set()
                await until_blocking(watcher, await db.fetch_value("SELECT pg_backend_pid()"))  # the retry waits
                await repository.record_outcome(alpha.id, attempt, "dead", 3600.0, 500, 3, "HTTP 500", "down")

        async def retry() -> DeliveryRow | None:
            await locked.wait()
            return await repository.retry(alpha.id, hooked, delivery.id, HORIZON_SECONDS)

        _, retried = await asyncio.wait_for(asyncio.gather(record_the_failure(), retry()), 20)
        now = await watcher.fetchval("SELECT now()")
        # Due now (not in the hour the failure asked for), with a fresh horizon.
        assert retried is not None and retried.status == "pending" and retried.next_attempt_at is not None
        assert 0 <= (now - retried.next_attempt_at).total_seconds() < 10
        assert (retried.expires_at - now).total_seconds() > HORIZON_SECONDS - 60
    finally:
        await repository.delete(alpha.id, hooked)
        await watcher.close()
        await db.close()


async def test_an_attempt_that_lost_its_lease_records_nothing_and_claims_nothing(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 1, 2)
        [head] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        # Another worker took the delivery over after the lease ran out: its attempt number moved on.
        outlived = msgspec.structs.replace(head, attempts=0)
        assert await delivered_then_next(repository, alpha, outlived) is None
        assert sorted(await status_of(repository, alpha, hooked)) == ["evt_1:pending:1", "evt_2:pending:0"]


async def test_a_deactivated_subscription_records_the_success_and_claims_nothing_more(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 1, 2)
        [head] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        await repository.update(alpha.id, hooked, "https://hooks.example.com/in", None, "paused", False, "test")
        assert await delivered_then_next(repository, alpha, head) is None
        assert sorted(await status_of(repository, alpha, hooked)) == ["evt_1:delivered:1", "evt_2:pending:0"]
        # 2 was queued with 1, so it waited behind it: it is made due, for when the subscription is on again.
        assert await waiting_of(repository, alpha, hooked) == ["evt_2:scheduled"]


async def fail(repository: WebhookRepository, tenant: TenantSpec, delivery: ClaimedDelivery, status: str) -> None:
    """Record a failed attempt: `pending` (retried in a minute) or `dead`."""
    assert await repository.record_outcome(tenant.id, delivery, status, 60.0, 500, 3, "HTTP 500", "down")


async def waiting_of(repository: WebhookRepository, tenant: TenantSpec, subscription_id: uuid.UUID) -> list[str]:
    """The pending deliveries, each with whether it has a time of its own (False: waiting behind its head)."""
    rows = await repository.deliveries(tenant.id, subscription_id, 100, 0)
    pending = sorted((row for row in rows if row.status == "pending"), key=lambda r: r.sequence or 0)
    return [f"{row.message_id}:{'scheduled' if row.next_attempt_at is not None else 'behind'}" for row in pending]


async def test_deliveries_queued_behind_a_failing_head_wait_outside_the_due_range_until_it_ends(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket, healthy_ticket = uuid.uuid4(), uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 1)
        [one] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        await fail(repository, alpha, one, "pending")
        # Queued by the dispatcher while the head is failing: they wait, with no time of their own; another
        # ticket's queue does not.
        await repository.queue(
            alpha.id,
            [event(hooked, ticket, 2), event(hooked, ticket, 3), event(hooked, healthy_ticket, 1)],
            HORIZON_SECONDS,
            behind_failing_heads=True,
        )
        assert await waiting_of(repository, alpha, hooked) == [
            "evt_1:scheduled",
            "evt_1:scheduled",
            "evt_2:behind",
            "evt_3:behind",
        ]
        blocked = "SELECT count(*) FROM webhook_delivery WHERE tenant_id = $1 AND next_attempt_at = 'infinity'"
        assert await db.fetch_value(blocked, alpha.id) == 2
        [healthy] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert (healthy.ticket_id, healthy.message_id) == (healthy_ticket, "evt_1")

        # The head is dead-lettered: its successor becomes due and the next claim round takes it; 3 still waits.
        await fail(repository, alpha, one, "dead")
        [two] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert (two.ticket_id, two.message_id) == (ticket, "evt_2")
        # 2 succeeds: 3, waiting behind it, is claimed with the success.
        three = await delivered_then_next(repository, alpha, two)
        assert three is not None and three.message_id == "evt_3"
        assert await db.fetch_value(blocked, alpha.id) == 0


async def test_a_delivery_left_waiting_behind_nothing_is_freed_by_the_sweep(db: Database, alpha: TenantSpec) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 1)
        [one] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        await fail(repository, alpha, one, "pending")
        await queue(repository, alpha, hooked, ticket, 2, 3, behind_failing_heads=True)
        # The head ends in a statement that did not see 2 queued (the race the sweep is for).
        await db.execute(
            "UPDATE webhook_delivery SET status = 'delivered' WHERE tenant_id = $1 AND id = $2", alpha.id, one.id
        )
        assert await repository.claim(alpha.id, 10, LEASE_SECONDS) == []
        assert alpha.id in await repository.tenants_with_waiting_deliveries()
        assert await repository.promote_stranded(alpha.id) == 1  # 2 only: 3 is behind 2
        assert await waiting_of(repository, alpha, hooked) == ["evt_2:scheduled", "evt_3:behind"]
        [two] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert two.message_id == "evt_2"


async def test_only_the_end_of_a_heads_turn_frees_the_delivery_waiting_behind_it(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        await queue(repository, alpha, hooked, ticket, 1)
        [one] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        await fail(repository, alpha, one, "pending")
        waiting = await queue(repository, alpha, hooked, ticket, 2, behind_failing_heads=True)
        assert len(waiting) == 1
        # Another failed attempt keeps the head's turn: 2 still waits.
        await fail(repository, alpha, one, "pending")
        assert await waiting_of(repository, alpha, hooked) == ["evt_1:scheduled", "evt_2:behind"]
        # Delivered (the worker's plain record, as after a chain's last send): 2 is due.
        assert await repository.record_outcome(alpha.id, one, "delivered", 0.0, 200, 3, None, "ok")
        assert await waiting_of(repository, alpha, hooked) == ["evt_2:scheduled"]


async def test_successors_queued_together_wait_and_a_replayed_earlier_event_does_not(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket = uuid.uuid4()
        # One statement queues 4 and 5: 5 waits behind 4 (no race: whatever ends 4 sees 5).
        waiting = await queue(repository, alpha, hooked, ticket, 5, 4)
        assert await waiting_of(repository, alpha, hooked) == ["evt_4:scheduled", "evt_5:behind"]
        [four] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert four.message_id == "evt_4" and len(waiting) == 1
        await fail(repository, alpha, four, "pending")
        # Behind the failing head: the dispatcher's 6 waits; a replay's 7 does not (nothing would look again at it).
        assert len(await queue(repository, alpha, hooked, ticket, 6, behind_failing_heads=True)) == 1
        assert await queue(repository, alpha, hooked, ticket, 7) == []
        # The dispatcher's 2, earlier than the failing head, is due: it is the queue's head now.
        assert await queue(repository, alpha, hooked, ticket, 2, behind_failing_heads=True) == []
        [two] = await repository.claim(alpha.id, 10, LEASE_SECONDS)
        assert two.message_id == "evt_2"


async def test_the_dispatchers_second_look_frees_what_the_end_of_a_heads_turn_could_not_see(
    db: Database, alpha: TenantSpec
) -> None:
    async with uncommitted(db) as repository:
        hooked = await subscription(repository, alpha)
        ticket, other_ticket = uuid.uuid4(), uuid.uuid4()
        for queue_of in (ticket, other_ticket):
            await repository.queue(alpha.id, [event(hooked, queue_of, 1)], HORIZON_SECONDS)
        for head in await repository.claim(alpha.id, 10, LEASE_SECONDS):
            await fail(repository, alpha, head, "pending")
        [two] = await queue(repository, alpha, hooked, ticket, 2, behind_failing_heads=True)
        [other_two] = await repository.queue(
            alpha.id, [event(hooked, other_ticket, 2)], HORIZON_SECONDS, behind_failing_heads=True
        )
        # Both heads end in statements that did not see their successors queued.
        await db.execute(
            "UPDATE webhook_delivery SET status = 'delivered' WHERE tenant_id = $1 AND message_id = 'evt_1'", alpha.id
        )
        # The second look at one batch frees that batch's deliveries only.
        assert await repository.promote_stranded_among(alpha.id, [two]) == 1
        assert sorted(await waiting_of(repository, alpha, hooked)) == ["evt_2:behind", "evt_2:scheduled"]
        assert await repository.promote_stranded_among(alpha.id, [other_two]) == 1
        assert await waiting_of(repository, alpha, hooked) == ["evt_2:scheduled", "evt_2:scheduled"]


# Every statement that looks for a queue's head, with literal arguments for EXPLAIN EXECUTE: (tenant, subscription,
# ticket, delivery) are filled in by the test.
_HEAD_LOOKUPS = {
    "delivered_claim_next": (
        webhook_repository.DELIVERED_CLAIM_NEXT,
        "'{tenant}', '{{{delivery}}}', 30, '{{1}}', '{{200}}', '{{3}}', '{{ok}}', now()",
    ),
    "record_outcome": (
        webhook_repository.RECORD_OUTCOME,
        "'{tenant}', '{delivery}', 1, 'dead', 0, 500, 3, 'HTTP 500', 'no', NULL, '{subscription}', '{ticket}'",
    ),
    "claim_deliveries": (webhook_repository.CLAIM_DELIVERIES, "'{tenant}', 10, 30"),
    "retry_wait": (webhook_repository.RETRY_WAIT, "'{tenant}', '{subscription}', '{delivery}'"),
    "promote_stranded": (webhook_repository.PROMOTE_STRANDED, "'{tenant}'"),
    "promote_stranded_among": (webhook_repository.PROMOTE_STRANDED_AMONG, "'{tenant}', '{{{delivery}}}'"),
    "insert_deliveries": (
        webhook_repository.INSERT_DELIVERIES,
        "'{tenant}', '{{{delivery}}}', '{{{subscription}}}', '{{evt_9}}', '{{ticket.updated}}', '{{9}}', "
        "'{{{ticket}}}', '{{9}}', '{{\"{{}}\"}}', 3600, true",
    ),
}
# The statements that scan the due index for due or waiting deliveries, and then look for their queues' heads.
_DUE_SCANS = ("claim_deliveries", "promote_stranded")
# The statements that only ask which tenants have due or waiting deliveries: the due index, and nothing else.
_TENANT_SCANS = {
    "due_tenants": webhook_repository.DUE_TENANTS,
    "tenants_with_waiting": webhook_repository.TENANTS_WITH_WAITING,
}


def _scans(plan: object) -> set[str]:
    """The indexes the plan reads webhook_delivery by (a bitmap scan's too), and "seq" if it reads all of it."""
    if isinstance(plan, list):
        return set().union(*(_scans(value) for value in plan))
    if not isinstance(plan, dict):
        return set()
    found: set[str] = set()
    if plan.get("Relation Name") == "webhook_delivery":
        kind = plan.get("Node Type")
        if kind == "Seq Scan":
            found.add("seq")
        elif kind in ("Index Scan", "Index Only Scan"):
            found.add(plan["Index Name"])
        elif kind == "Bitmap Heap Scan":
            found |= _bitmap_indexes(plan.get("Plans", []))
    return found.union(*(_scans(value) for value in plan.values()))


def _bitmap_indexes(plans: list[dict[str, object]]) -> set[str]:
    """The indexes under a bitmap heap scan (its Bitmap Index Scans, through any BitmapAnd or BitmapOr)."""
    found = {str(node["Index Name"]) for node in plans if node.get("Node Type") == "Bitmap Index Scan"}
    return found.union(*(_bitmap_indexes(node.get("Plans", [])) for node in plans))  # type: ignore[arg-type]


@pytest.mark.parametrize("quiet_subscriptions", [0, 300])
async def test_a_queue_head_is_found_on_the_queue_index_whatever_the_statistics_say(
    migrated: str, alpha: TenantSpec, quiet_subscriptions: int
) -> None:
    """Pending deliveries come and go within milliseconds, so ANALYZE finds few of them, and a backlog builds up
    behind statistics that do not know it. The cached generic plans of the head lookups must still descend the queue
    index: the due index (every pending delivery of the tenant) or the listing index (the subscription's whole
    history) would make each head lookup read the whole backlog, slower the further deliveries fall behind. Also
    beside many quiet subscriptions: a generic plan expects each subscription to have the average number of
    deliveries, so with the busy one among many quiet ones the listing index looked cheap."""
    connection = await asyncpg.connect(migrated)
    try:
        transaction = connection.transaction()
        await transaction.start()
        subscription_id, tickets = uuid.uuid4(), [uuid.uuid4() for _ in range(32)]
        await connection.execute(
            webhook_repository.INSERT_SUBSCRIPTION,
            alpha.id,
            subscription_id,
            "https://hooks.example.com/in",
            None,
            "plans",
            True,
            "whsec_x",
            "test",
        )
        history = """
        INSERT INTO webhook_delivery (tenant_id, id, subscription_id, message_id, event_type, event_id, ticket_id,
                                      sequence, body, status, next_attempt_at, expires_at, created_at)
        SELECT $1, gen_random_uuid(), $2, 'evt_' || n, 'ticket.updated', n, ($3::uuid[])[1 + n % $4], n, '{}',
               CASE WHEN n <= $5 THEN 'pending' ELSE 'delivered' END, now(), now() + interval '1 day', now()
          FROM generate_series($6::int, $7::int) AS n
        """
        # Statistics taken with 2 of 4,000 deliveries pending (this transaction's own rows count as live), all of
        # them queued as pending first, so that the pending-only indexes hold an entry for each, as they do until
        # VACUUM...
        await connection.execute(history, alpha.id, subscription_id, tickets, len(tickets), 4000, 1, 4000)
        await connection.execute(
            "UPDATE webhook_delivery SET status = 'delivered' WHERE tenant_id = $1 AND sequence > 2", alpha.id
        )
        await connection.execute(
            """
            INSERT INTO webhook_subscription (tenant_id, id, url, events, description, active, secret, created_at,
                                              created_by, updated_at, updated_by)
            SELECT $1, gen_random_uuid(), 'https://hooks.example.com/quiet', NULL, 'quiet', true, 'whsec_x', now(),
                   'test', now(), 'test'
              FROM generate_series(1, $2::int)
            """,
            alpha.id,
            quiet_subscriptions,
        )
        # Ten delivered deliveries each, of ten tickets of their own.
        await connection.execute(
            """
            INSERT INTO webhook_delivery (tenant_id, id, subscription_id, message_id, event_type, event_id,
                                          ticket_id, sequence, body, status, next_attempt_at, expires_at, created_at)
            SELECT $1, gen_random_uuid(), s.id, 'evt_' || n, 'ticket.updated', n, gen_random_uuid(), 1, '{}',
                   'delivered', now(), now() + interval '1 day', now()
              FROM webhook_subscription s, generate_series(1, 10) AS n
             WHERE s.tenant_id = $1 AND s.description = 'quiet'
            """,
            alpha.id,
        )
        await connection.execute("ANALYZE webhook_delivery")
        # ... then a backlog of 2,000 pending deliveries of 20 tickets.
        await connection.execute(history, alpha.id, subscription_id, tickets, 20, 10_000, 4001, 6000)
        await connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, (sql, arguments) in _HEAD_LOOKUPS.items():
            await connection.execute(f"PREPARE {name} AS {sql}")
            literals = arguments.format(
                tenant=alpha.id, subscription=subscription_id, ticket=tickets[1], delivery=uuid.uuid4()
            )
            plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({literals})")
            used = _scans(msgspec.json.decode(plan))
            required = {"webhook_delivery_queue_idx"}
            if name in _DUE_SCANS:
                required.add("webhook_delivery_due_idx")
            assert required <= used <= required | {"webhook_delivery_pkey"}, (name, used)
        for name, sql in _TENANT_SCANS.items():
            await connection.execute(f"PREPARE {name} AS {sql}")
            plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}")
            assert _scans(msgspec.json.decode(plan)) == {"webhook_delivery_due_idx"}, name
        await transaction.rollback()
        # ANALYZE wrote the table's size into pg_class in place, which the rollback leaves: measure it again as it
        # is, for the tests after this one.
        await connection.execute("ANALYZE webhook_delivery")
    finally:
        await connection.close()
