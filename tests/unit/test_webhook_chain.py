"""How a delivery task chains through its queue (app/webhook/delivery.py `_deliver`): while each send succeeds it
records the success and claims the next delivery in one statement, at most CHAIN_LENGTH in a row and for at most
CHAIN_SECONDS; a subscription that was failing, a ping, or a lost database stops the chain. Successes of several
tasks share a statement (SuccessRecorder). The repository here is a stand-in that records the calls; the statements
themselves are tested on PostgreSQL in tests/integration/test_webhook_queue.py."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import pytest

from app.db.errors import DatabaseUnavailable
from app.webhook import delivery as delivery_module
from app.webhook import second_looks as second_looks_module
from app.webhook.delivery import CHAIN_LENGTH, Attempt, DeliveryPolicy, DeliveryWorker, SuccessRecorder
from app.webhook.repository import ClaimedDelivery, RetryBasis, Success, WebhookRepository
from app.webhook.second_looks import SecondLooks, SecondLookSweep

T = TypeVar("T")
TENANT = uuid.uuid4()
SUBSCRIPTION = uuid.uuid4()
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
FAR = NOW + datetime.timedelta(days=36500)  # a retry horizon no test reaches
POLICY = DeliveryPolicy(
    allow_loopback=False,
    concurrency=4,
    poll_seconds=0.25,
    connect_timeout_seconds=1.0,
    timeout_seconds=1.0,
    retry_base_seconds=1.0,
    retry_max_seconds=10.0,
    horizon_seconds=60.0,
    disable_after_seconds=600.0,
)


def claimed(
    sequence: int,
    *,
    ticket: uuid.UUID | None,
    failing_since: datetime.datetime | None = None,
    attempts: int = 1,
    subscription: uuid.UUID = SUBSCRIPTION,
) -> Any:
    return ClaimedDelivery(
        uuid.uuid4(),
        subscription,
        ticket,
        f"evt_{sequence}",
        "{}",
        attempts,
        NOW,
        "https://hooks.example.com/in",
        "whsec_x",
        None,
        None,
        failing_since,
    )


class Queue:
    """A stand-in for WebhookRepository holding one ticket's queue of deliveries, in order."""

    def __init__(self, length: int, *, unavailable: bool = False) -> None:
        ticket = uuid.uuid4()
        self.deliveries = [claimed(n, ticket=ticket) for n in range(1, length + 1)]
        self.unavailable = unavailable
        self.calls: list[str] = []
        self.retry_in: list[float] = []
        # By message id: the delivery's state as it is now (a manual retry may have moved it); else never retried.
        self.retry_basis: dict[str, RetryBasis] = {}

    async def delivered_claim_next(
        self, _tenant: uuid.UUID, successes: list[Success], _lease: float
    ) -> list[ClaimedDelivery]:
        claimed = []
        for success in successes:
            self.calls.append(f"delivered+next {success.delivery.message_id}")
            if self.unavailable:
                raise DatabaseUnavailable("the database is gone")
            position = self.deliveries.index(success.delivery)
            claimed += self.deliveries[position + 1 : position + 2]
        return claimed

    async def record_outcome(
        self, _tenant: uuid.UUID, delivery: ClaimedDelivery, status: str, retry_in: float, *_: Any
    ) -> bool:
        self.calls.append(f"record {delivery.message_id} {status}")
        self.retry_in.append(retry_in)
        return True

    async def lock_failed_attempt(self, _tenant: uuid.UUID, delivery: ClaimedDelivery) -> RetryBasis:
        return self.retry_basis.get(delivery.message_id, RetryBasis(0, FAR))

    async def subscription_failed(self, *_: Any) -> None:
        return None  # as for a subscription removed meanwhile: nothing to disable

    async def subscription_succeeded(self, _tenant: uuid.UUID, _subscription: uuid.UUID) -> None:
        self.calls.append("streak ended")


class NoDatabase:
    """Transactions of a repository stand-in: nothing to begin or end."""

    def transaction(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


class Worker(DeliveryWorker):
    """The real worker, with sends that succeed at once and are noted."""

    def __init__(self, queue: Queue) -> None:
        super().__init__(cast(Any, NoDatabase()), cast(WebhookRepository, queue), POLICY)
        self.sent: list[str] = []

    async def send(self, delivery: ClaimedDelivery) -> Attempt:
        self.sent.append(delivery.message_id)
        return Attempt(200, 1, None, "ok", None)


async def test_a_task_chains_through_its_queue_until_it_is_empty() -> None:
    queue = Queue(3)
    worker = Worker(queue)
    await worker._deliver(TENANT, queue.deliveries[0])
    assert worker.sent == ["evt_1", "evt_2", "evt_3"]
    assert queue.calls == ["delivered+next evt_1", "delivered+next evt_2", "delivered+next evt_3"]


async def test_a_chain_ends_after_chain_length_sends_with_a_plain_record() -> None:
    queue = Queue(CHAIN_LENGTH + 5)
    worker = Worker(queue)
    await worker._deliver(TENANT, queue.deliveries[0])
    assert worker.sent == [f"evt_{n}" for n in range(1, CHAIN_LENGTH + 1)]
    assert queue.calls[-1] == f"record evt_{CHAIN_LENGTH} delivered"  # nothing more claimed: the slot is free
    assert len(queue.calls) == CHAIN_LENGTH


async def test_a_chain_ends_once_it_has_run_for_chain_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_module, "CHAIN_SECONDS", 0.0)
    queue = Queue(3)
    worker = Worker(queue)
    await worker._deliver(TENANT, queue.deliveries[0])
    assert worker.sent == ["evt_1"]
    assert queue.calls == ["record evt_1 delivered"]


async def test_a_success_of_a_failing_subscription_ends_its_streak_and_the_chain() -> None:
    queue = Queue(2)
    queue.deliveries[0] = claimed(1, ticket=queue.deliveries[1].ticket_id, failing_since=NOW)
    worker = Worker(queue)
    await worker._deliver(TENANT, queue.deliveries[0])
    assert worker.sent == ["evt_1"]
    assert queue.calls == ["record evt_1 delivered", "streak ended"]


async def test_a_ping_is_recorded_without_looking_for_a_next_delivery() -> None:
    queue = Queue(0)
    ping = claimed(1, ticket=None)
    queue.deliveries = [ping]
    worker = Worker(queue)
    await worker._deliver(TENANT, ping)
    assert queue.calls == ["record evt_1 delivered"]


async def test_a_lost_database_stops_the_chain_and_leaves_the_lease_to_run_out() -> None:
    queue = Queue(3, unavailable=True)
    worker = Worker(queue)
    await worker._deliver(TENANT, queue.deliveries[0])
    assert worker.sent == ["evt_1"]
    assert queue.calls == ["delivered+next evt_1"]


class Statements:
    """A stand-in for WebhookRepository.delivered_claim_next that notes each statement's successes (their deliveries'
    ids) and holds it until released; it claims, for each success, the delivery `next_of` gives for it, and raises
    the exceptions of `failures` in turn, one a statement, first."""

    def __init__(
        self, next_of: dict[uuid.UUID, ClaimedDelivery] | None = None, failures: list[Exception] | None = None
    ) -> None:
        self.next_of = next_of or {}
        self.failures = failures or []
        self.statements: list[list[uuid.UUID]] = []
        self.release = asyncio.Event()

    async def delivered_claim_next(
        self, _tenant: uuid.UUID, successes: list[Success], _lease: float
    ) -> list[ClaimedDelivery]:
        self.statements.append([success.delivery.id for success in successes])
        await self.release.wait()
        if self.failures:
            raise self.failures.pop(0)
        # In an order of its own (the reverse of the successes'): the recorder must match them by queue.
        return [self.next_of[s.delivery.id] for s in reversed(successes) if s.delivery.id in self.next_of]


def success(delivery: ClaimedDelivery) -> Success:
    return Success(delivery, 200, 1, "ok")


async def settle() -> None:
    """Let the ready tasks run: five turns of the loop, more than a success's way to its writer's statement takes."""
    for _ in range(5):
        await asyncio.sleep(0)


async def within_a_second(awaitable: Awaitable[T]) -> T:
    """The awaitable's result; a task left waiting for ever fails the test instead of hanging the suite."""
    async with asyncio.timeout(1.0):
        return await awaitable


def finished(recorder: SuccessRecorder) -> bool:
    """Whether the recorder has no writer and nothing waiting: every writer cleaned up after."""
    return not recorder._writers and not any(recorder._waiting.values())


async def test_successes_that_come_while_a_statement_runs_share_the_next_one_at_most_one_per_queue() -> None:
    ticket, other = uuid.uuid4(), uuid.uuid4()
    a_one, a_two, a_three = (claimed(n, ticket=ticket) for n in (1, 2, 3))
    b_one, b_two = (claimed(n, ticket=other) for n in (1, 2))
    statements = Statements({a_one.id: a_two, b_one.id: b_two})
    recorder = SuccessRecorder(cast(WebhookRepository, statements), 30.0)
    alone = asyncio.create_task(recorder.record(TENANT, success(a_one)))
    await settle()
    assert statements.statements == [[a_one.id]]  # alone: recorded at once
    # While it runs: another queue's success, and two of the first queue's (both in flight after a rare race).
    later = [asyncio.create_task(recorder.record(TENANT, success(d))) for d in (b_one, a_two, a_three)]
    await settle()
    statements.release.set()
    assert await within_a_second(alone) == a_two  # its queue's next
    assert await within_a_second(asyncio.gather(*later)) == [b_two, None, None]
    assert statements.statements == [[a_one.id], [b_one.id, a_two.id], [a_three.id]]
    await settle()
    assert finished(recorder)


async def test_one_tickets_successes_for_two_subscriptions_each_get_their_own_queues_next() -> None:
    ticket, other_subscription = uuid.uuid4(), uuid.uuid4()
    mine_one, mine_two = (claimed(n, ticket=ticket) for n in (1, 2))
    theirs_one, theirs_two = (claimed(n, ticket=ticket, subscription=other_subscription) for n in (1, 2))
    # The statement answers in its own order: each claimed delivery goes to its own queue's success.
    statements = Statements({theirs_one.id: theirs_two, mine_one.id: mine_two})
    statements.release.set()
    recorder = SuccessRecorder(cast(WebhookRepository, statements), 30.0)
    outcomes = [recorder.record(TENANT, success(d)) for d in (mine_one, theirs_one)]
    assert await within_a_second(asyncio.gather(*outcomes)) == [mine_two, theirs_two]
    assert statements.statements == [[mine_one.id, theirs_one.id]]  # two queues: one statement


async def test_a_statement_records_at_most_success_batch_successes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_module, "SUCCESS_BATCH", 2)
    statements = Statements()
    recorder = SuccessRecorder(cast(WebhookRepository, statements), 30.0)
    deliveries = [claimed(1, ticket=uuid.uuid4()) for _ in range(4)]
    first = asyncio.create_task(recorder.record(TENANT, success(deliveries[0])))
    await settle()
    rest = [asyncio.create_task(recorder.record(TENANT, success(d))) for d in deliveries[1:]]
    await settle()
    statements.release.set()
    assert await within_a_second(asyncio.gather(first, *rest)) == [None] * 4
    assert statements.statements == [[deliveries[0].id], [d.id for d in deliveries[1:3]], [deliveries[3].id]]


@pytest.mark.parametrize("failure", [DatabaseUnavailable("the database is gone"), RuntimeError("a bug")])
async def test_a_failed_statement_ends_its_tasks_chains_and_the_next_records_what_came_meanwhile(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    one, two, three = (claimed(1, ticket=uuid.uuid4()) for _ in range(3))
    after_three = claimed(2, ticket=three.ticket_id)
    statements = Statements({one.id: claimed(2, ticket=one.ticket_id), three.id: after_three}, failures=[failure])
    recorder = SuccessRecorder(cast(WebhookRepository, statements), 30.0)
    failing = asyncio.create_task(recorder.record(TENANT, success(one)))
    await settle()
    meanwhile = [asyncio.create_task(recorder.record(TENANT, success(d))) for d in (two, three)]
    await settle()
    with caplog.at_level("ERROR", logger="app.webhook"):
        statements.release.set()
        # Unrecorded, nothing next: its lease runs out and it is sent again.
        assert await within_a_second(failing) is None
        assert await within_a_second(asyncio.gather(*meanwhile)) == [None, after_three]
    assert statements.statements == [[one.id], [two.id, three.id]]
    # A lost database is logged once per outage by the database boundary; anything else here, once a statement.
    logged = [r.getMessage() for r in caplog.records if r.name == "app.webhook"]
    assert logged == ([] if isinstance(failure, DatabaseUnavailable) else ["webhook successes not recorded"])
    await settle()
    assert finished(recorder)  # the writer has ended: the next success starts another
    assert await within_a_second(recorder.record(TENANT, success(claimed(3, ticket=uuid.uuid4())))) is None
    assert len(statements.statements) == 3


async def test_closing_cancels_the_statement_under_way_and_gives_up_on_what_waits() -> None:
    statements = Statements()
    recorder = SuccessRecorder(cast(WebhookRepository, statements), 30.0)
    running = asyncio.create_task(recorder.record(TENANT, success(claimed(1, ticket=uuid.uuid4()))))
    await settle()
    waiting = asyncio.create_task(recorder.record(TENANT, success(claimed(1, ticket=uuid.uuid4()))))
    await settle()
    await recorder.aclose()
    # Unrecorded, nothing next: their tasks end.
    assert await within_a_second(running) is None and await within_a_second(waiting) is None
    assert len(statements.statements) == 1 and finished(recorder)
    # A writer cancelled before it ever ran is cleaned up all the same.
    statements.release.set()
    orphan = asyncio.create_task(recorder.record(TENANT, success(claimed(1, ticket=uuid.uuid4()))))
    await asyncio.sleep(0)  # record() has made its writer, which has not run yet
    await recorder.aclose()
    assert await within_a_second(orphan) is None
    assert finished(recorder) and len(statements.statements) == 1
    # Closed, it starts a writer again for a success recorded afterwards.
    assert await within_a_second(recorder.record(TENANT, success(claimed(1, ticket=uuid.uuid4())))) is None
    assert len(statements.statements) == 2


async def test_the_successes_of_tasks_cancelled_meanwhile_are_left_out_of_the_next_statement() -> None:
    """A stopping process cancels its delivery tasks: recorded, their successes would claim next deliveries that
    nobody sends; left out, they are sent again once their leases run out."""
    ticket, other = uuid.uuid4(), uuid.uuid4()
    first, gone, kept = claimed(1, ticket=ticket), claimed(1, ticket=other), claimed(2, ticket=ticket)
    statements = Statements()
    recorder = SuccessRecorder(cast(WebhookRepository, statements), 30.0)
    running = asyncio.create_task(recorder.record(TENANT, success(first)))
    await settle()
    cancelled = asyncio.create_task(recorder.record(TENANT, success(gone)))
    waiting = asyncio.create_task(recorder.record(TENANT, success(kept)))
    await settle()
    cancelled.cancel()
    statements.release.set()
    assert await within_a_second(asyncio.gather(running, waiting)) == [None, None]
    assert statements.statements == [[first.id], [kept.id]]


class Outbox:
    """A stand-in for WebhookRepository with nothing to dispatch, noting the second looks."""

    def __init__(self) -> None:
        self.looks: list[list[uuid.UUID]] = []

    async def undispatched(self) -> list[object]:
        return []

    async def promote_stranded_among(self, _tenant: uuid.UUID, waiting: list[uuid.UUID]) -> int:
        self.looks.append(waiting)
        return 0


async def test_the_dispatcher_looks_again_at_waiting_deliveries_once_their_time_has_come() -> None:
    outbox = Outbox()
    dispatcher = delivery_module.Dispatcher(cast(Any, None), cast(WebhookRepository, outbox), 60.0)
    due, later, soon = [uuid.uuid4()], [uuid.uuid4()], [uuid.uuid4()]
    dispatcher.second_looks.note(TENANT, later, after_seconds=3600.0)
    dispatcher.second_looks.note(TENANT, due, after_seconds=0.0)  # noted after `later`, due before it
    dispatcher.second_looks.note(TENANT, [], after_seconds=0.0)  # nothing to look at: not noted
    assert await dispatcher.dispatch() == (0, False)
    assert outbox.looks == [due]  # the later one waits for its time
    dispatcher.second_looks.note(TENANT, soon, after_seconds=60.0)
    assert dispatcher.second_looks.noted() == [(TENANT, soon), (TENANT, later)]  # soonest first


class Clock:
    """time.monotonic, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_a_second_look_that_fails_is_tried_again_later_a_few_times_without_holding_up_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(second_looks_module, "time", clock)
    outbox = Outbox()
    dispatcher = delivery_module.Dispatcher(cast(Any, None), cast(WebhookRepository, outbox), 60.0)
    looks = dispatcher.second_looks
    failing, other = [uuid.uuid4()], [uuid.uuid4()]
    looks.note(TENANT, failing, after_seconds=0.0)
    looks.note(TENANT, other, after_seconds=0.0)

    async def lost(_tenant: uuid.UUID, waiting: list[uuid.UUID]) -> int:
        if waiting == failing:
            raise DatabaseUnavailable("down")
        outbox.looks.append(waiting)
        return 1

    outbox.promote_stranded_among = lost  # type: ignore[method-assign]
    assert await dispatcher.dispatch() == (0, False)  # the round goes on: its dispatching does not depend on it
    assert looks.noted() == [(TENANT, other), (TENANT, failing)]  # kept, but a second later: the other goes first
    assert await looks.look_due() == 1 and outbox.looks == [other]
    for _ in range(second_looks_module.LOOK_TRIES - 1):  # the retries, a second apart
        clock.now += second_looks_module.FAILED_LOOK_DELAY_SECONDS
        with pytest.raises(DatabaseUnavailable):
            await looks.look_due()
    assert looks.noted() == []  # given up: the workers' slow sweep is the safety net
    del outbox.promote_stranded_among  # the instance's stand-in goes: the class's, which answers, is back
    looks.note(TENANT, failing, after_seconds=0.0)
    assert await dispatcher.dispatch() == (0, False)
    assert outbox.looks == [other, failing] and looks.noted() == []


async def test_looks_still_to_come_are_taken_when_their_process_stops() -> None:
    outbox = Outbox()
    looks = SecondLooks(cast(WebhookRepository, outbox))
    later, failing_after = [uuid.uuid4()], [uuid.uuid4()]
    looks.note(TENANT, later, after_seconds=3600.0)
    sweep = SecondLookSweep(looks, wake=lambda: None)
    sweep.start()
    await sweep.stop()
    assert outbox.looks == [later] and looks.noted() == []

    async def lost(_tenant: uuid.UUID, _waiting: list[uuid.UUID]) -> int:
        raise DatabaseUnavailable("down")

    outbox.promote_stranded_among = lost  # type: ignore[method-assign]
    looks.note(TENANT, failing_after, after_seconds=3600.0)
    assert await looks.look_at_all() == 0  # a stopping process does not fail for it: logged, left to the sweep


async def test_a_look_cut_short_by_its_process_stopping_is_kept_for_the_stop() -> None:
    outbox = Outbox()
    looks = SecondLooks(cast(WebhookRepository, outbox))
    waiting = [uuid.uuid4()]
    looks.note(TENANT, waiting, after_seconds=0.0)
    started = asyncio.Event()

    async def slow(_tenant: uuid.UUID, _waiting: list[uuid.UUID]) -> int:
        started.set()
        await asyncio.Event().wait()
        return 0

    outbox.promote_stranded_among = slow  # type: ignore[method-assign]
    look = asyncio.create_task(looks.look_due())
    await started.wait()
    look.cancel()
    with pytest.raises(asyncio.CancelledError):
        await look
    assert looks.noted() == [(TENANT, waiting)]
    del outbox.promote_stranded_among
    assert await looks.look_at_all() == 0 and outbox.looks == [waiting] and looks.noted() == []


async def test_the_service_process_wakes_its_worker_when_a_look_freed_a_delivery() -> None:
    outbox = Outbox()
    looks = SecondLooks(cast(WebhookRepository, outbox))
    woken: list[bool] = []
    sweep = SecondLookSweep(looks, wake=lambda: woken.append(True))
    looks.note(TENANT, [uuid.uuid4()], after_seconds=0.0)
    assert await sweep.sweep() == 0 and woken == []  # nothing freed: no wake

    async def freed(_tenant: uuid.UUID, _waiting: list[uuid.UUID]) -> int:
        return 1

    outbox.promote_stranded_among = freed  # type: ignore[method-assign]
    looks.note(TENANT, [uuid.uuid4()], after_seconds=0.0)
    assert await sweep.sweep() == 1 and woken == [True]


class FailingWorker(Worker):
    async def send(self, delivery: ClaimedDelivery) -> Attempt:
        self.sent.append(delivery.message_id)
        return Attempt(500, 1, "HTTP 500", "", None)


def test_the_backoff_doubles_from_the_base_up_to_the_maximum_and_a_retry_after_wins() -> None:
    worker = Worker(Queue(0))
    failed = Attempt(500, 1, "HTTP 500", "", None)
    for attempts, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (40, 10.0)):
        delays = [worker.retry_delay(failed, attempts) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling, attempts
        assert max(delays) - min(delays) > ceiling / 10, attempts  # jittered, not in step
    # An attempt under way when a manual retry came counts as the first after it.
    assert 0.5 <= worker.retry_delay(failed, 0) <= 1.0
    assert worker.retry_delay(Attempt(429, 1, "HTTP 429", "", 42.0), 3) == 42.0


async def test_a_failure_after_a_manual_retry_backs_off_from_the_base_again() -> None:
    queue = Queue(0)
    ticket = uuid.uuid4()
    long_failing = claimed(1, ticket=ticket, attempts=7)  # 2^6 x base: the maximum, 10 s
    retried = claimed(2, ticket=ticket, attempts=7)
    queue.retry_basis["evt_2"] = RetryBasis(6, FAR)  # retried by hand after six: the first attempt since
    for delivery in (long_failing, retried):
        queue.deliveries = [delivery]
        await FailingWorker(queue)._deliver(TENANT, delivery)
    assert queue.calls == ["record evt_1 pending", "record evt_2 pending"]
    assert 5.0 <= queue.retry_in[0] <= 10.0 and 0.5 <= queue.retry_in[1] <= 1.0
