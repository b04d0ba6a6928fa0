"""The outbox dispatcher and the delivery workers, run in every service process (and by `python -m app webhooks`).

One loop per process: dispatch committed events into deliveries, claim the due heads of the delivery queues, and
send each claimed delivery in a task of its own (up to WEBHOOK_CONCURRENCY at once). A task whose delivery succeeds
claims the next one of the same queue as it records the success and sends it at once, for a while (see _deliver;
the successes of many tasks share a statement, see SuccessRecorder); a finished task wakes the loop, which hands its
slot out again. Everything is written so that any number of processes may run it together: dispatching is serialised
per tenant by an advisory lock, deliveries are claimed with SKIP LOCKED and leased, and an attempt records its outcome
only if no later attempt has claimed the delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from app.config import Settings
from app.db.database import Database
from app.db.errors import DatabaseUnavailable
from app.tenancy.model import seed_status
from app.tenancy.repository import TenantRepository
from app.user.people import People, people
from app.user.repository import UserRepository
from app.webhook.dto import (
    Actor,
    Change,
    WebhookAttachment,
    WebhookBody,
    WebhookComment,
    WebhookData,
    WebhookTicket,
    WebhookUser,
)
from app.webhook.repository import (
    ClaimedDelivery,
    EventRow,
    NewDelivery,
    SubscriptionRow,
    Success,
    UserEventRow,
    WebhookRepository,
)
from app.webhook.second_looks import LOOK_AGAIN_SECONDS, SecondLooks
from app.webhook.signing import signature_header
from app.webhook.ssrf import ConnectError, GuardedClient, SendFailed
from app.webhook.statuses import TenantStatuses

log = logging.getLogger("app.webhook")

DISPATCH_BATCH = 500
# At most this many successes are recorded in one statement (see SuccessRecorder; the rest go into the next one).
SUCCESS_BATCH = 100
ROUND_GAP_SECONDS = 0.01
# A delivery task sends at most this many of one queue's deliveries in a row, and chains no more once this long
# has passed since its first send, before it gives its slot back.
CHAIN_LENGTH = 50
CHAIN_SECONDS = 1.0
# How soon a worker looks again at a tenant's events it left to another process's dispatcher.
CONTENDED_SECONDS = 0.05
# At most how often (jittered down to half) a worker looks over every waiting delivery for one left behind a queue
# head that has already gone: a last safety net behind the dispatcher's second looks (see INSERT_DELIVERIES in the
# repository); it reads every waiting delivery of a tenant that has any.
STRANDED_SWEEP_SECONDS = 600.0
# At most this much of a response body is read, and stored.
RESPONSE_EXCERPT_BYTES = 1024
MAX_ERROR_LENGTH = 500
USER_AGENT = "ticketing-webhooks/1"

_body_encoder = msgspec.json.Encoder()
_changes_decoder = msgspec.json.Decoder(dict[str, dict[str, msgspec.Raw]])


@dataclass(frozen=True)
class DeliveryPolicy:
    """How deliveries are sent and retried (from the WEBHOOK_* settings)."""

    allow_loopback: bool
    concurrency: int
    poll_seconds: float
    connect_timeout_seconds: float
    timeout_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    horizon_seconds: float
    disable_after_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            allow_loopback=settings.webhook_allow_loopback,
            concurrency=settings.webhook_concurrency,
            poll_seconds=settings.webhook_poll_interval_seconds,
            connect_timeout_seconds=settings.webhook_connect_timeout_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
            retry_base_seconds=settings.webhook_retry_base_seconds,
            retry_max_seconds=settings.webhook_retry_max_seconds,
            horizon_seconds=settings.webhook_retry_horizon_seconds,
            disable_after_seconds=settings.webhook_disable_after_seconds,
        )

    def client(self, *, allow_loopback: bool, loopback_only: bool = False) -> GuardedClient:
        return GuardedClient(
            allow_loopback=allow_loopback,
            loopback_only=loopback_only,
            max_connections=self.concurrency,
            timeout_seconds=self.timeout_seconds,
            connect_timeout_seconds=self.connect_timeout_seconds,
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claimed attempt holds its delivery: its whole timeout, twice, and a second more."""
        return 2 * self.timeout_seconds + 1


def message_id(event_id: int) -> str:
    """The event's `webhook-id`: stable across attempts, retries and replays (the receiver's dedupe key)."""
    return f"evt_{event_id}"


def user_message_id(event_id: uuid.UUID) -> str:
    """A user event's `webhook-id` (its id is a UUID, so it never equals a ticket event's)."""
    return f"evt_{event_id.hex}"


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _json(text: str | None) -> msgspec.Raw | None:
    return None if text is None else msgspec.Raw(text.encode())


def _actor(subject: str, known: People) -> Actor:
    """Seed 004's person: the subject, with the name and email the users directory has for it (or none)."""
    name, email = known.get(subject, (None, None))
    return Actor(subject, name, email)


def subjects_of(row: EventRow) -> list[str]:
    """Whom an event's body names: its actor, and the author of its comment or file."""
    return [row.actor, *(author for author in (row.comment_author, row.attachment_author) if author is not None)]


def event_body(row: EventRow, known: People, statuses: Mapping[str, str]) -> str:
    """The body of an event's deliveries, in seed 004's shape: `event`, `timestamp` (when the change committed),
    `data.ticket` with previous and current values, plus the changed fields or the comment where they apply; people
    named as `known` has them (see subjects_of), the status by the tenant's `statuses` (see TenantStatuses)."""
    changes: dict[str, Change] | msgspec.UnsetType = msgspec.UNSET
    changed_fields: list[str] | msgspec.UnsetType = msgspec.UNSET
    if row.kind in ("ticket.created", "ticket.updated"):
        decoded = _changes_decoder.decode(row.changes)
        changes = {field: Change(value.get("old"), value.get("new")) for field, value in decoded.items()}
        changed_fields = sorted(decoded)
    ticket = WebhookTicket(
        id=row.ticket_id,
        object_id=row.object_id,
        ticket_type_id=row.ticket_type_id,
        sequence=row.sequence,
        title=_json(row.title),
        status=Change(seed_status(statuses, row.previous_state_name), seed_status(statuses, row.state_name)),
        state=Change(row.previous_state_name, row.state_name),
        state_id=Change(row.previous_state_id, row.state_id),
        assignee=Change(row.previous_assignee, row.assignee),
        updated_by=_actor(row.actor, known),
        changes=changes,
        changed_fields=changed_fields,
        note=row.note if row.note is not None else msgspec.UNSET,
    )
    comment: WebhookComment | msgspec.UnsetType = msgspec.UNSET
    if row.comment_id is not None and row.comment_content is not None:
        comment = WebhookComment(
            row.comment_id,
            row.comment_content,
            bool(row.comment_internal),
            _actor(row.comment_author or row.actor, known),
        )
    attachment: WebhookAttachment | msgspec.UnsetType = msgspec.UNSET
    if row.attachment_id is not None and row.attachment_filename is not None:
        attachment = WebhookAttachment(
            row.attachment_id,
            row.attachment_filename,
            row.attachment_size or 0,
            row.attachment_mime_type or "application/octet-stream",
            row.attachment_sha256 or "",
            bool(row.attachment_internal),
            _actor(row.attachment_author or row.actor, known),
        )
    data = WebhookData(ticket=ticket, comment=comment, attachment=attachment)
    body = WebhookBody(row.kind, _utc(row.created_at), data)
    return _body_encoder.encode(body).decode()


def user_event_body(row: UserEventRow, known: People) -> str:
    """The body of a user event's deliveries: `data.user` as the users directory shows the user; who added it named
    as `known` has them."""
    user = WebhookUser(
        row.user_id,
        row.subject,
        row.realm,
        row.name,
        row.email,
        row.role,
        row.status,
        row.user_created_at,
        _actor(row.actor, known),
    )
    return _body_encoder.encode(WebhookBody(row.kind, _utc(row.created_at), WebhookData(user=user))).decode()


def ping_body(subscription_id: uuid.UUID) -> str:
    body = WebhookBody(
        "webhook.test", _utc(datetime.datetime.now(datetime.UTC)), WebhookData(subscription_id=subscription_id)
    )
    return _body_encoder.encode(body).decode()


def subscribed(subscription: SubscriptionRow, event_type: str) -> bool:
    return subscription.events is None or event_type in subscription.events


def wanting(subscriptions: list[SubscriptionRow], kind: str) -> list[SubscriptionRow]:
    """The subscriptions an event goes to: the active ones (when it is dispatched) that want its type."""
    return [subscription for subscription in subscriptions if subscribed(subscription, kind)]


def deliveries_for(
    routes: list[tuple[EventRow, list[SubscriptionRow]]], known: People, statuses: Mapping[str, str]
) -> list[NewDelivery]:
    """One delivery per event and each of its subscriptions, in the order given (oldest event first)."""
    queued = []
    for row, wanted in routes:
        if not wanted:
            continue
        body = event_body(row, known, statuses)
        for subscription in wanted:
            queued.append(
                NewDelivery(
                    uuid.uuid4(),
                    subscription.id,
                    message_id(row.id),
                    row.kind,
                    row.id,
                    row.ticket_id,
                    row.sequence,
                    body,
                )
            )
    return queued


class Dispatcher:
    """Turns committed, undispatched ticket events into deliveries, tenant by tenant, in one transaction per batch
    (the deliveries and the events' `dispatched_at` commit together: an event is dispatched exactly once).

    Deliveries it queues behind a queue head that has failed wait until that head's turn ends, and the statement
    that ends it frees them; one that started before they were committed cannot see them. So the dispatcher looks
    again at what it queued as waiting: at once, and LOOK_AGAIN_SECONDS later (see SecondLooks)."""

    def __init__(self, db: Database, repository: WebhookRepository, horizon_seconds: float) -> None:
        self._db = db
        self._repository = repository
        self._users = UserRepository(db)
        self._statuses = TenantStatuses(TenantRepository(db))
        self._horizon = horizon_seconds
        self.second_looks = SecondLooks(repository)

    async def dispatch(self) -> tuple[int, bool]:
        """Dispatch every event committed so far, the tickets' and the users'; returns how many, and whether a
        tenant's events were left to another dispatcher at work on them (look again soon: it may have started
        before the latest of them committed)."""
        try:
            await self.second_looks.look_due()
        except DatabaseUnavailable:
            pass  # logged once per outage by the database boundary; what follows finds out for itself
        except Exception:
            log.exception("webhook second look failed")  # tried again later (see SecondLooks): dispatch goes on
        dispatched = 0
        left = False
        for found in await self._repository.undispatched():
            dispatch_batch = self._dispatch_batch if found.outbox == "ticket" else self._dispatch_user_batch
            while True:
                count = await dispatch_batch(found.tenant_id)
                if count is None:
                    left = True
                    break
                dispatched += count
                if count < DISPATCH_BATCH:
                    break
        return dispatched, left

    async def _dispatch_batch(self, tenant_id: uuid.UUID) -> int | None:
        """Dispatch a batch of the tenant's waiting events (see TAKE_EVENTS; None: another dispatcher is at it)."""
        waiting: list[uuid.UUID] = []
        async with self._db.transaction():
            if not await self._repository.lock_outbox(tenant_id):
                return None
            events = await self._repository.take_events(tenant_id, DISPATCH_BATCH)
            if not events:
                return 0
            subscriptions = await self._repository.active_subscriptions(tenant_id)
            wanted = [event.id for event in events if any(subscribed(s, event.kind) for s in subscriptions)]
            if wanted:
                rows = await self._repository.events(tenant_id, wanted)
                routes = [(row, wanting(subscriptions, row.kind)) for row in rows]
                known = await people(self._users, tenant_id, (s for row in rows for s in subjects_of(row)))
                queued = deliveries_for(routes, known, await self._statuses.of(tenant_id))
                waiting = await self._repository.queue(tenant_id, queued, self._horizon, behind_failing_heads=True)
        if waiting:
            # The second look is scheduled first, so that it happens even if the first fails.
            self.second_looks.note(tenant_id, waiting, after_seconds=LOOK_AGAIN_SECONDS)
            await self._repository.promote_stranded_among(tenant_id, waiting)
        return len(events)

    async def _dispatch_user_batch(self, tenant_id: uuid.UUID) -> int | None:
        """As _dispatch_batch, for the users' events: they belong to no ticket, so no queue orders them."""
        async with self._db.transaction():
            if not await self._repository.lock_outbox(tenant_id):
                return None
            events = await self._repository.claim_user_events(tenant_id, DISPATCH_BATCH)
            if not events:
                return 0
            subscriptions = await self._repository.active_subscriptions(tenant_id)
            known = await people(self._users, tenant_id, (event.actor for event in events))
            queued: list[NewDelivery] = []
            for event in events:
                wanted = wanting(subscriptions, event.kind)
                body = user_event_body(event, known) if wanted else ""
                queued.extend(
                    NewDelivery(
                        uuid.uuid4(), subscription.id, user_message_id(event.id), event.kind, None, None, None, body
                    )
                    for subscription in wanted
                )
            await self._repository.queue(tenant_id, queued, self._horizon)
            await self._repository.mark_user_events_dispatched(tenant_id, [event.id for event in events])
        return len(events)


# A success waiting for its statement, and where its task waits for the outcome: the next delivery of its queue.
_Waiting = tuple[Success, asyncio.Future[ClaimedDelivery | None]]


class SuccessRecorder:
    """Records the successes of a process's delivery tasks in one statement per tenant at a time, each with the claim
    of the next delivery of its queue (DELIVERED_CLAIM_NEXT), the way a database groups commits: what succeeds while
    a statement runs waits for it and goes into the next one together. Alone, a success is recorded at once; under
    load one statement serves many tasks, and most of what a statement costs PostgreSQL is the statement, not its
    rows."""

    def __init__(self, repository: WebhookRepository, lease_seconds: float) -> None:
        self._repository = repository
        self._lease_seconds = lease_seconds
        self._waiting: dict[uuid.UUID, list[_Waiting]] = {}
        self._writers: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def record(self, tenant_id: uuid.UUID, success: Success) -> ClaimedDelivery | None:
        """Record the success; the next delivery of its queue, claimed, or None: nothing is next, or the statement
        failed (the success unrecorded: its lease runs out and it is sent again, at least once)."""
        outcome: asyncio.Future[ClaimedDelivery | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant_id, []).append((success, outcome))
        writer = self._writers.get(tenant_id)
        if writer is None or writer.done():  # done: ended, its clean-up not yet run
            writer = asyncio.create_task(self._write(tenant_id), name="webhook-successes")
            writer.add_done_callback(lambda ended: self._written(tenant_id, ended))
            self._writers[tenant_id] = writer
        return await outcome

    async def aclose(self) -> None:
        """Stop writing (once the delivery tasks are stopped): a statement under way is cancelled, and what waits
        for one is not recorded (sent again once its lease runs out). What a cancelled statement had committed stays,
        the deliveries it claimed included, which nobody sends: their leases run out too, as for any attempt that a
        stopping process cuts short. A success recorded afterwards starts a writer again."""
        writers = list(self._writers.values())
        for writer in writers:
            writer.cancel()
        if writers:
            await asyncio.wait(writers)

    async def _write(self, tenant_id: uuid.UUID) -> None:
        while batch := self._take(tenant_id):
            claimed: list[ClaimedDelivery] = []
            try:
                claimed = await self._repository.delivered_claim_next(
                    tenant_id, [success for success, _ in batch], self._lease_seconds
                )
            except DatabaseUnavailable:
                pass  # an outage is logged once by the database boundary (an administrator's cancel is not: rare)
            except Exception:
                log.exception("webhook successes not recorded", extra={"tenant": str(tenant_id), "count": len(batch)})
            finally:  # cancelled too: no task is left waiting
                next_of = {next_one.queue: next_one for next_one in claimed}
                for success, outcome in batch:
                    if not outcome.done():
                        outcome.set_result(next_of.pop(success.queue, None))

    def _written(self, tenant_id: uuid.UUID, writer: asyncio.Task[None]) -> None:
        """A writer has ended, with nothing left to record or cancelled: unless another one has taken over, what
        waits is given up on (unrecorded, nothing next)."""
        if not writer.cancelled() and writer.exception() is not None:
            log.error("webhook success writer failed", exc_info=writer.exception())
        if self._writers.get(tenant_id) is writer:
            del self._writers[tenant_id]
            for _, outcome in self._waiting.pop(tenant_id, []):
                if not outcome.done():
                    outcome.set_result(None)

    def _take(self, tenant_id: uuid.UUID) -> list[_Waiting]:
        """The next statement's successes, in the order they came, at most one of each queue (two attempts of one
        queue can both be in flight only after a rare race, see RECORD_OUTCOME; the later one waits a statement).
        Those whose task has been cancelled (its process is stopping) are left out: recorded, each would claim its
        queue's next delivery for nobody to send; unrecorded, they are sent again once their leases run out."""
        taken: list[_Waiting] = []
        left: list[_Waiting] = []
        queues: set[tuple[uuid.UUID, uuid.UUID | None]] = set()
        for item in self._waiting.get(tenant_id, []):
            if item[1].cancelled():
                continue
            queue = item[0].queue
            if queue in queues or len(taken) == SUCCESS_BATCH:
                left.append(item)
            else:
                queues.add(queue)
                taken.append(item)
        self._waiting[tenant_id] = left
        return taken


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    latency_ms: int
    error: str | None
    response: str | None
    retry_after_seconds: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after(status: int, headers: Mapping[str, str]) -> float | None:
    """The seconds a 429 or 503 asks us to wait (a number of seconds or an HTTP date), or None."""
    if status not in (429, 503):
        return None
    value = headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, (moment - datetime.datetime.now(datetime.UTC)).total_seconds())


class DeliveryWorker:
    """This process's dispatch-and-deliver loop."""

    name = "webhook-delivery"

    def __init__(self, db: Database, repository: WebhookRepository, policy: DeliveryPolicy) -> None:
        self._db = db
        self._repository = repository
        self._policy = policy
        self._dispatcher = Dispatcher(db, repository, policy.horizon_seconds)
        self._https = policy.client(allow_loopback=policy.allow_loopback)
        # Plain http goes only to loopback receivers, and only where the setting allows it.
        self._http = policy.client(allow_loopback=True, loopback_only=True) if policy.allow_loopback else None
        self._successes = SuccessRecorder(repository, policy.lease_seconds)
        self._owns_pool = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # Whether the last round left a tenant's events to another process's dispatcher.
        self._contended = False
        self._next_stranded_sweep = 0.0

    @classmethod
    def with_own_pool(cls, dsn: str, policy: DeliveryPolicy) -> DeliveryWorker:
        """A worker on a connection pool of its own (opened by `start`, closed by `stop`): one connection per four
        deliveries in flight, plus two for the loop's own statements (dispatching, claiming, second looks). A delivery
        holds one only to record its outcome: its tenant's share of a statement for a success (one at a time per
        tenant), a short transaction for a failure, which may wait for a manual retry of the delivery; so the pool is
        enough for as many tenants' successes and failures at once as it has connections, and the rest wait for one.

        Its transactions commit asynchronously (synchronous_commit off): the worker only moves events along, and a
        crash that loses its last few commits loses nothing but progress, undone consistently (WAL keeps their
        order): events dispatched again, deliveries claimed or recorded again, so sent again, at least once. The
        events themselves are written by the API's own durable commits. Waiting for each delivery's WAL flush
        would put every one of them in the queue for the disk in front of the API's writes.

        Its statements are planned once per connection (plan_cache_mode force_generic_plan), as the worker's
        statements are written for their generic plans (the queue and dispatch statements' plans are tested in
        tests/integration): the one that records many successes, given arrays, was otherwise planned again at
        nearly every call (2,765 of 3,193 in a bench run), which cost more than running it. A statement added here
        is planned the same way."""
        db = Database(
            dsn,
            min_size=1,
            max_size=2 + policy.concurrency // 4,
            logger="app.webhook.db",
            settings={"synchronous_commit": "off", "plan_cache_mode": "force_generic_plan"},
        )
        worker = cls(db, WebhookRepository(db), policy)
        worker._owns_pool = True
        return worker

    async def start(self) -> None:
        if self._owns_pool:
            await self._db.open()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop claiming; attempts in flight are cancelled (their leases run out and they are sent again); the
        dispatcher's second looks still to come are taken now."""
        await self._stop_tasks()
        await self._dispatcher.second_looks.look_at_all()
        if self._owns_pool:
            await self._db.close()

    async def _stop_tasks(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))
        await self._successes.aclose()
        await self._https.aclose()
        if self._http is not None:
            await self._http.aclose()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            busy = False
            try:
                busy = await self.work_once()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable:
                pass  # logged once per outage by the database boundary; the next round catches up
            except Exception:
                log.exception("webhook round failed")
            if not busy:
                # Events left to another process's dispatcher are looked at again soon (it may have started before
                # the latest of them committed), not at every round's pace: it may be at them for a while.
                poll = self._policy.poll_seconds
                wait = min(CONTENDED_SECONDS, poll) if self._contended else poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            # Whatever finishes or commits within the next few milliseconds shares the next round: one dispatch and
            # one claim for all of it, rather than a round (and a scan of the queues) for each delivery.
            await asyncio.sleep(ROUND_GAP_SECONDS)
            self._wake.clear()

    async def work_once(self) -> bool:
        """Dispatch what has committed, then claim what is due (and now and then free deliveries stranded behind
        nothing); whether anything was done."""
        self._contended = False  # a round that fails before its dispatch answers must not keep the short wait
        dispatched, self._contended = await self._dispatcher.dispatch()
        claimed = await self._claim()
        promoted = 0
        if time.monotonic() >= self._next_stranded_sweep:
            self._next_stranded_sweep = time.monotonic() + STRANDED_SWEEP_SECONDS * random.uniform(0.5, 1.0)  # noqa: S311
            for tenant_id in await self._repository.tenants_with_waiting_deliveries():
                promoted += await self._repository.promote_stranded(tenant_id)
        return dispatched > 0 or claimed > 0 or promoted > 0

    async def _claim(self) -> int:
        """Claim due deliveries for the free slots, a fair share per tenant per round in random order, so that one
        tenant's slow or unreachable receivers cannot hold every slot while others wait (the next round, at once
        when anything was claimed, hands out what is left)."""
        free = self._policy.concurrency - len(self._in_flight)
        claimed = 0
        if free <= 0:
            return 0
        tenants = await self._repository.tenants_with_due_deliveries()
        random.shuffle(tenants)
        share = max(1, -(-free // max(1, len(tenants))))
        for tenant_id in tenants:
            for delivery in await self._repository.claim(tenant_id, min(free, share), self._policy.lease_seconds):
                task = asyncio.create_task(self._deliver(tenant_id, delivery))
                self._in_flight.add(task)
                task.add_done_callback(self._done)
                claimed += 1
                free -= 1
            if free <= 0:
                break
        return claimed

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed unexpectedly", exc_info=task.exception())

    async def _deliver(self, tenant_id: uuid.UUID, delivery: ClaimedDelivery) -> None:
        """Send the delivery, then, while each succeeds, the next one of its queue (claimed as the success is
        recorded), at most CHAIN_LENGTH in a row and for at most CHAIN_SECONDS: then the slot goes back to the round,
        which shares the slots out among tenants (a slow receiver answering 2xx cannot keep one for long)."""
        started = time.monotonic()
        current = delivery
        for sent in range(1, CHAIN_LENGTH + 1):
            attempt = await self.send(current)
            more = sent < CHAIN_LENGTH and time.monotonic() - started < CHAIN_SECONDS
            try:
                following = await self._record(tenant_id, current, attempt, claim_next=more)
            except DatabaseUnavailable:
                return  # unrecorded, the lease runs out and the delivery is attempted again: at least once
            if following is None:
                return
            current = following

    async def send(self, delivery: ClaimedDelivery) -> Attempt:
        """One signed POST of the delivery's body; never raises for the receiver's or the network's failures."""
        now = datetime.datetime.now(datetime.UTC)
        secrets = [delivery.secret]
        if delivery.previous_secret and delivery.previous_secret_until and delivery.previous_secret_until > now:
            secrets.append(delivery.previous_secret)
        body = delivery.body.encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, delivery.message_id, timestamp, body),
        }
        client = self._https if urlsplit(delivery.url).scheme == "https" else self._http
        started = time.monotonic()
        if client is None:
            return Attempt(None, 0, "refused: plain http is allowed only with WEBHOOK_ALLOW_LOOPBACK", None, None)
        try:
            async with asyncio.timeout(self._policy.timeout_seconds):
                answer = await client.post(delivery.url, body, headers, excerpt_bytes=RESPONSE_EXCERPT_BYTES)
        except TimeoutError:
            timed_out = f"no complete response within {self._policy.timeout_seconds:g} s"
            return Attempt(None, _since(started), timed_out, None, None)
        except SendFailed as exc:
            failure = f"{type(exc).__name__}: {exc}" if isinstance(exc, ConnectError) else str(exc)
            return Attempt(None, _since(started), failure[:MAX_ERROR_LENGTH], None, None)
        text = answer.excerpt.decode("utf-8", errors="replace").replace("\x00", "")
        error = None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
        return Attempt(answer.status, _since(started), error, text, retry_after(answer.status, answer.headers))

    def retry_delay(self, attempt: Attempt, attempts: int) -> float:
        """Seconds until the next attempt after `attempts` failed ones (counted since the last manual retry): what a
        429 or 503 asked for, else exponential backoff with jitter (half to all of base * 2^(attempts - 1), at most the
        maximum), so many failing deliveries do not retry in step."""
        if attempt.retry_after_seconds is not None:
            return attempt.retry_after_seconds
        policy = self._policy
        # At least one: an attempt already under way when a manual retry came counts as the first after it.
        doublings = min(max(attempts, 1) - 1, 30)
        backoff: float = min(policy.retry_max_seconds, policy.retry_base_seconds * 2.0**doublings)
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    async def _record(
        self, tenant_id: uuid.UUID, delivery: ClaimedDelivery, attempt: Attempt, *, claim_next: bool
    ) -> ClaimedDelivery | None:
        """Record the attempt's outcome; after a success of a ticket's delivery (of a subscription that was not
        failing), with `claim_next`, in the same statement as claiming the next delivery of its queue, returned."""
        policy = self._policy
        queued = delivery.ticket_id is not None  # pings and users' events are queues of their own: nothing is next
        if attempt.succeeded and claim_next and queued and delivery.failing_since is None:
            success = Success(delivery, attempt.status_code, attempt.latency_ms, attempt.response)
            return await self._successes.record(tenant_id, success)
        if attempt.succeeded:
            recorded = await self._repository.record_outcome(
                tenant_id, delivery, "delivered", 0.0, attempt.status_code, attempt.latency_ms, None, attempt.response
            )
            if recorded and delivery.failing_since is not None:  # else there is no failing streak to end
                await self._repository.subscription_succeeded(tenant_id, delivery.subscription_id)
            return None
        status = await self._record_failure(tenant_id, delivery, attempt)
        if status is None:
            return None
        if status == "dead":
            log.warning(
                "webhook delivery dead-lettered",
                extra={"delivery": str(delivery.id), "webhook_id": delivery.message_id, "attempts": delivery.attempts},
            )
        now = datetime.datetime.now(datetime.UTC)
        failing_since = await self._repository.subscription_failed(tenant_id, delivery.subscription_id, now)
        if failing_since is not None and (now - failing_since).total_seconds() >= policy.disable_after_seconds:
            reason = (
                f"disabled automatically: every delivery has failed since {_utc(failing_since)} "
                f"(last error: {attempt.error})"
            )
            await self._repository.disable(tenant_id, delivery.subscription_id, reason[:MAX_ERROR_LENGTH])
            log.warning("webhook subscription disabled", extra={"subscription": str(delivery.subscription_id)})
        return None

    async def _record_failure(self, tenant_id: uuid.UUID, delivery: ClaimedDelivery, attempt: Attempt) -> str | None:
        """Record a failed attempt: tried again after its backoff (counted from the last manual retry), or dead if
        that passes its retry horizon, both as the delivery is now (a manual retry may have come while the attempt was
        under way). The status recorded, or None if the attempt no longer held the delivery."""
        async with self._db.transaction():
            basis = await self._repository.lock_failed_attempt(tenant_id, delivery)
            if basis is None:
                return None
            retry_in = self.retry_delay(attempt, delivery.attempts - basis.attempts_at_retry)
            due = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=retry_in)
            status = "dead" if due > basis.expires_at else "pending"
            # Recorded: the lock holds the attempt's claim on the delivery (RECORD_OUTCOME's condition) until commit.
            await self._repository.record_outcome(
                tenant_id,
                delivery,
                status,
                retry_in,
                attempt.status_code,
                attempt.latency_ms,
                attempt.error,
                attempt.response,
            )
        return status


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
