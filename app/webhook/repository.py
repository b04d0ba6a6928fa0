"""SQL for webhook subscriptions, the outbox (ticket_event rows not yet dispatched) and deliveries. tenant_id is a
mandatory argument of every method, and no statement locks rows of more than one tenant.

Dispatching takes a tenant's undispatched events oldest first, one dispatcher per tenant at a time (a transaction
advisory lock: a second one moves on and comes back, rather than dispatching later events of the same tickets ahead
of the first one's batch, or waiting for it): that keeps deliveries queued in the order of each ticket's events (a
ticket's events are inserted under its row lock after the one before committed, so a transaction that sees one of a
ticket's events sees every earlier one, and a batch takes each ticket's first waiting events by sequence, whatever
order their ids are in: see TAKE_EVENTS).

Deliveries are claimed with SKIP LOCKED, and only the head of each (subscription, ticket) queue (its pending
delivery with the lowest event sequence) is eligible; a claim pushes `next_attempt_at` past the attempt's timeout,
which is its lease: a worker that dies mid-attempt leaves the delivery due again once the lease is over.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Literal

import msgspec

from app.db.database import Database, select_list


class SubscriptionRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    url: str
    events: list[str] | None
    description: str
    active: bool
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime.datetime | None
    disabled_reason: str | None
    failing_since: datetime.datetime | None
    declared: bool
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str


class OutboxEvent(msgspec.Struct, frozen=True):
    id: int
    kind: str


class EventRow(msgspec.Struct, frozen=True):
    """An event with everything its webhook body shows."""

    id: int
    kind: str
    sequence: int
    created_at: datetime.datetime
    actor: str
    ticket_id: uuid.UUID
    object_id: str
    ticket_type_id: uuid.UUID
    title: str | None  # JSON text of the title field's value
    changes: str  # JSON text: field UUID -> {"old", "new"}
    state_id: uuid.UUID | None
    state_name: str | None
    previous_state_id: uuid.UUID | None
    previous_state_name: str | None
    assignee: str | None
    previous_assignee: str | None
    note: str | None
    comment_id: uuid.UUID | None
    comment_content: str | None
    comment_internal: bool | None
    comment_author: str | None
    attachment_id: uuid.UUID | None
    attachment_filename: str | None
    attachment_size: int | None
    attachment_mime_type: str | None
    attachment_sha256: str | None
    attachment_internal: bool | None
    attachment_author: str | None


class Undispatched(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    outbox: Literal["ticket", "user"]


class UserEventRow(msgspec.Struct, frozen=True):
    """A user's event (user.created) with the user its webhook body shows."""

    id: uuid.UUID
    kind: str
    created_at: datetime.datetime
    actor: str
    user_id: uuid.UUID
    subject: str
    realm: str
    name: str | None
    email: str | None
    role: str
    status: str
    user_created_at: datetime.datetime


class NewDelivery(msgspec.Struct, frozen=True):
    id: uuid.UUID
    subscription_id: uuid.UUID
    message_id: str
    event_type: str
    event_id: int | None
    ticket_id: uuid.UUID | None
    sequence: int | None
    body: str


class ClaimedDelivery(msgspec.Struct, frozen=True):
    id: uuid.UUID
    subscription_id: uuid.UUID
    ticket_id: uuid.UUID | None  # the queue it heads, with the subscription (None: a queue of its own)
    message_id: str
    body: str
    attempts: int
    created_at: datetime.datetime
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime.datetime | None
    # When claimed: since when the subscription had been failing (None: it was not).
    failing_since: datetime.datetime | None

    @property
    def queue(self) -> tuple[uuid.UUID, uuid.UUID | None]:
        """Its queue: the subscription and the ticket (None: a queue of its own)."""
        return self.subscription_id, self.ticket_id


class Success(msgspec.Struct, frozen=True):
    """A successful attempt of a claimed delivery, to be recorded."""

    delivery: ClaimedDelivery
    status_code: int | None
    latency_ms: int
    response: str | None

    @property
    def queue(self) -> tuple[uuid.UUID, uuid.UUID | None]:
        return self.delivery.queue


class RetryBasis(msgspec.Struct, frozen=True):
    """What a failed attempt's next step depends on, as the delivery is now (a manual retry may have come meanwhile)."""

    # The attempt count at the last manual retry: the backoff counts the attempts since.
    attempts_at_retry: int
    # The end of its retry horizon.
    expires_at: datetime.datetime


class _Queued(msgspec.Struct, frozen=True):
    id: uuid.UUID
    waiting: bool


class DeliveryRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    message_id: str
    event_type: str
    event_id: int | None
    ticket_id: uuid.UUID | None
    sequence: int | None
    status: str
    attempts: int
    # None: waiting behind an earlier delivery of its queue (until that one's turn ends)
    next_attempt_at: datetime.datetime | None
    expires_at: datetime.datetime
    last_attempt_at: datetime.datetime | None
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None
    last_response: str | None
    created_at: datetime.datetime
    delivered_at: datetime.datetime | None


_SUBSCRIPTION = select_list(SubscriptionRow)
# A delivery waiting behind its queue's head has no time of its own (see INSERT_DELIVERIES): none is shown.
_DELIVERY = select_list(DeliveryRow, next_attempt_at="nullif(next_attempt_at, 'infinity')")

INSERT_SUBSCRIPTION = f"""
INSERT INTO webhook_subscription (tenant_id, id, url, events, description, active, secret, created_at, created_by,
                                  updated_at, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, now(), $8)
RETURNING {_SUBSCRIPTION}
"""

# A subscription switched on again starts afresh: the reason it was disabled and its failing streak are cleared. Any
# other change keeps them (the right-hand sides read the row as it was): editing a failing subscription must not
# restart the count towards disabling it.
UPDATE_SUBSCRIPTION = f"""
UPDATE webhook_subscription
   SET url = $3, events = $4, description = $5, active = $6, updated_at = now(), updated_by = $7,
       disabled_reason = CASE WHEN $6 AND NOT active THEN NULL ELSE disabled_reason END,
       failing_since = CASE WHEN $6 AND NOT active THEN NULL ELSE failing_since END
 WHERE tenant_id = $1 AND id = $2
RETURNING {_SUBSCRIPTION}
"""

ROTATE = f"""
UPDATE webhook_subscription
   SET previous_secret = secret, previous_secret_until = now() + make_interval(secs => $4), secret = $3,
       updated_at = now(), updated_by = $5
 WHERE tenant_id = $1 AND id = $2
RETURNING {_SUBSCRIPTION}
"""

# A subscription declared in a tenant file: created, or brought in line with the file (its secret rotates, with
# the usual overlap, when the environment variable holds a new one). One the service disabled while the file says
# active is switched on again, afresh as by the API (the file is where it is changed).
UPSERT_DECLARED = f"""
INSERT INTO webhook_subscription AS s (tenant_id, id, url, events, description, active, secret, declared, created_at,
                                       created_by, updated_at, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, true, now(), 'tenant-file', now(), 'tenant-file')
ON CONFLICT (tenant_id, id) DO UPDATE
   SET url = excluded.url, events = excluded.events, description = excluded.description, active = excluded.active,
       previous_secret = CASE WHEN s.secret = excluded.secret THEN s.previous_secret ELSE s.secret END,
       previous_secret_until = CASE WHEN s.secret = excluded.secret THEN s.previous_secret_until
                                    ELSE $8::timestamptz END,
       secret = excluded.secret, declared = true, updated_at = now(), updated_by = 'tenant-file',
       disabled_reason = CASE WHEN excluded.active AND NOT s.active THEN NULL ELSE s.disabled_reason END,
       failing_since = CASE WHEN excluded.active AND NOT s.active THEN NULL ELSE s.failing_since END
 WHERE (s.url, s.events, s.description, s.active, s.secret) IS DISTINCT FROM
       (excluded.url, excluded.events, excluded.description, excluded.active, excluded.secret)
RETURNING {_SUBSCRIPTION}
"""

# Each tenant with undispatched events, once per outbox that has them.
UNDISPATCHED = """
SELECT DISTINCT tenant_id, 'ticket' AS outbox FROM ticket_event WHERE dispatched_at IS NULL
 UNION ALL
SELECT DISTINCT tenant_id, 'user' AS outbox FROM user_event WHERE dispatched_at IS NULL
"""

# One dispatcher at a time per tenant (its ticket and user events), across processes: held until its transaction
# ends (see TAKE_EVENTS).
OUTBOX_LOCK_KEY = "hashtext('webhook_outbox:' || $1::uuid::text)"
LOCK_OUTBOX = f"SELECT pg_try_advisory_xact_lock({OUTBOX_LOCK_KEY})"

# A batch of the tenant's undispatched events, marked dispatched by the transaction that queues their deliveries: as
# many as it has among the oldest $2 (by id) of each ticket there, its first by sequence. What a batch takes of a
# ticket is always the start of what waits of it, so no batch takes a ticket's later event before its earlier one, even
# where ids do not follow each ticket's order (Citus with writes through several nodes, each handing out ids from its
# own range: migration 2026-12-13T11), and a batch reads no more events than it takes. The outer condition is checked
# again on a row another transaction was writing (a dispatcher that does not take the lock: an older version during a
# rolling deploy, or one connected through another node): an event it dispatched meanwhile is not taken a second time.
TAKE_EVENTS = """
UPDATE ticket_event SET dispatched_at = now()
 WHERE tenant_id = $1 AND dispatched_at IS NULL AND id = ANY(ARRAY(
       SELECT w.id
         FROM (SELECT o.ticket_id, count(*) AS taken
                 FROM (SELECT ticket_id FROM ticket_event
                        WHERE tenant_id = $1 AND dispatched_at IS NULL
                        ORDER BY id
                        LIMIT $2) AS o
                GROUP BY o.ticket_id) AS t
        CROSS JOIN LATERAL (
              SELECT e.id
                FROM ticket_event e
               WHERE e.tenant_id = $1 AND e.ticket_id = t.ticket_id AND e.dispatched_at IS NULL
               ORDER BY e.sequence
               LIMIT t.taken) AS w))
RETURNING id, kind
"""

# The tenant's oldest undispatched user events with their users, locked until the transaction ends.
CLAIM_USER_EVENTS = """
SELECT e.id, e.kind, e.created_at, e.actor, u.id AS user_id, u.subject, u.realm, u.name, u.email, u.role, u.status,
       u.created_at AS user_created_at
  FROM user_event e
  JOIN app_user u ON u.tenant_id = e.tenant_id AND u.id = e.user_id
 WHERE e.tenant_id = $1 AND e.dispatched_at IS NULL
 ORDER BY e.created_at, e.id
 LIMIT $2
   FOR UPDATE OF e
"""

MARK_USER_EVENTS_DISPATCHED = (
    "UPDATE user_event SET dispatched_at = now() WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
)

# The title is the value of the type's `title` field: the one this event set, else the ticket's current one.
_EVENT_DETAILS = """
SELECT e.id, e.kind, e.sequence, e.created_at, e.actor, e.ticket_id, t.object_id, t.type_id AS ticket_type_id,
       (SELECT (coalesce(e.changes -> (f ->> 'id') -> 'new', t.data -> (f ->> 'id')))::text
          FROM ticket_type_version v, jsonb_array_elements(v.definition -> 'fields') AS f
         WHERE v.tenant_id = e.tenant_id AND v.type_id = t.type_id AND v.version = e.type_version
           AND f ->> 'key' = 'title'
         LIMIT 1) AS title,
       e.changes::text AS changes, e.state_id, s.name AS state_name, p.state_id AS previous_state_id,
       ps.name AS previous_state_name, e.assignee, p.assignee AS previous_assignee, e.note, e.comment_id,
       c.content AS comment_content, c.is_internal AS comment_internal, c.author AS comment_author,
       e.attachment_id, a.filename AS attachment_filename, a.size AS attachment_size,
       a.mime_type AS attachment_mime_type, a.sha256 AS attachment_sha256, a.internal AS attachment_internal,
       a.author AS attachment_author
  FROM ticket_event e
  JOIN ticket t ON t.tenant_id = e.tenant_id AND t.id = e.ticket_id
  LEFT JOIN ticket_event p ON p.tenant_id = e.tenant_id AND p.ticket_id = e.ticket_id AND p.sequence = e.sequence - 1
  LEFT JOIN ticket_state s ON s.tenant_id = e.tenant_id AND s.id = e.state_id
  LEFT JOIN ticket_state ps ON ps.tenant_id = e.tenant_id AND ps.id = p.state_id
  LEFT JOIN ticket_comment c ON c.tenant_id = e.tenant_id AND c.id = e.comment_id
  LEFT JOIN attachment a ON a.tenant_id = e.tenant_id AND a.id = e.attachment_id
 WHERE e.tenant_id = $1
"""
EVENTS_BY_ID = _EVENT_DETAILS + " AND e.id = ANY($2::bigint[]) ORDER BY e.id"
# A replay's range: one ticket's events from a sequence, or every event from a time; oldest first.
EVENTS_OF_TICKET = (
    _EVENT_DETAILS + " AND t.object_id = $2 AND e.sequence >= $3 AND e.sequence <= $4 ORDER BY e.sequence LIMIT $5"
)
EVENTS_BETWEEN = _EVENT_DETAILS + " AND e.created_at >= $2 AND e.created_at <= $3 ORDER BY e.id LIMIT $4"

# Queued deliveries are due at once, except those that wait at next_attempt_at = 'infinity', out of the due index's
# range, until they become their queue's head: the ones behind an earlier delivery of the same queue queued in the
# same statement, and (with $11, the dispatcher) the ones behind a head that has failed (a receiver that is down).
# Whatever ends a head's turn promotes or claims its successor (RECORD_OUTCOME, DELIVERED_CLAIM_NEXT). That cannot
# miss a same-statement successor (the first of them is claimed only once they are all committed), but a head can
# end in a statement that started before a dispatcher's successors committed: the dispatcher (as the replay and
# retry routes do) looks again at what it queued as waiting, at once and a little later (PROMOTE_STRANDED_AMONG,
# SecondLooks), and a slow sweep (PROMOTE_STRANDED) is the last safety net. Without waiting, every claim round would
# walk each delivery queued behind a failing head, checking whether it is a head: the whole backlog, every round,
# while a receiver is down. Waiting is an index hint only: a claim still takes heads only, so order never depends on
# it. RETURNING says which wait.
# A replay's first delivery of a queue (without $11; the others wait behind it) also waits while a delivery of its
# queue is in flight (claimed, its outcome not yet recorded): an earlier event replayed would otherwise be the head at
# once and go out beside it. Ahead of that delivery, it waits until the attempt's lease ends, not at 'infinity':
# whatever ends the attempt sooner claims it (DELIVERED_CLAIM_NEXT) or makes it due (RECORD_OUTCOME), and if the
# attempt never ends (its worker died), or ended in a statement that could not see the replay, the lease's end is
# when it is due anyway. Behind it, it waits at 'infinity' like any successor: the attempt's success claims it, and
# otherwise that delivery stays ahead of it; a success recorded by a statement that started before the replay
# committed cannot see it, so the replay route looks again once committed (SecondLooks). (The lookup is in the
# queue index's order, as the head lookups: as NOT EXISTS it was planned as an anti-join on the listing index.)
INSERT_DELIVERIES = """
INSERT INTO webhook_delivery (tenant_id, id, subscription_id, message_id, event_type, event_id, ticket_id, sequence,
                              body, status, next_attempt_at, expires_at, created_at)
SELECT $1, d.id, d.subscription_id, d.message_id, d.event_type, d.event_id, d.ticket_id, d.sequence, d.body,
       'pending',
       greatest(now(), behind.failing, flight.waiting,
                CASE WHEN d.ticket_id IS NOT NULL AND d.place > 1 THEN 'infinity'::timestamptz END),
       now() + make_interval(secs => $10), now()
  FROM (SELECT u.*, row_number() OVER (PARTITION BY u.subscription_id, u.ticket_id ORDER BY u.sequence, u.n) AS place
          FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], $7::uuid[], $8::integer[],
                      $9::text[]) WITH ORDINALITY
               AS u (id, subscription_id, message_id, event_type, event_id, ticket_id, sequence, body, n)) AS d
  LEFT JOIN LATERAL (
       SELECT 'infinity'::timestamptz AS failing
         FROM (SELECT h.sequence, h.created_at, h.last_error
                 FROM webhook_delivery h
                WHERE h.tenant_id = $1 AND h.subscription_id = d.subscription_id AND h.ticket_id = d.ticket_id
                  AND h.status = 'pending'
                ORDER BY h.sequence, h.created_at
                LIMIT 1) AS head
        WHERE $11 AND head.last_error IS NOT NULL AND (head.sequence, head.created_at) < (d.sequence, now())) AS behind
       ON true
  LEFT JOIN LATERAL (
       SELECT CASE WHEN f.sequence <= d.sequence THEN 'infinity'::timestamptz ELSE f.leased_until END AS waiting
         FROM webhook_delivery f
        WHERE NOT $11 AND d.place = 1 AND f.tenant_id = $1 AND f.subscription_id = d.subscription_id
          AND f.ticket_id = d.ticket_id AND f.status = 'pending' AND f.leased_until > now()
        ORDER BY f.sequence, f.created_at
        LIMIT 1) AS flight
       ON true
RETURNING id, next_attempt_at = 'infinity' AS waiting
"""

# Deliveries stranded at 'infinity' with nothing ahead of them in their queue (the heads of their queues, found as
# CLAIM_DELIVERIES finds them: a NOT EXISTS was planned as an anti-join that read the whole table for each waiting
# delivery): due now. The sweep, now and then, over a tenant. (A delivery of no ticket never waits: INSERT_DELIVERIES
# parks only deliveries with a ticket.)
PROMOTE_STRANDED = """
UPDATE webhook_delivery d
   SET next_attempt_at = now()
 WHERE d.tenant_id = $1 AND d.status = 'pending' AND d.next_attempt_at = 'infinity'
   AND d.id = (
       SELECT e.id FROM webhook_delivery e
        WHERE e.tenant_id = $1 AND e.subscription_id = d.subscription_id AND e.ticket_id = d.ticket_id
          AND e.status = 'pending'
        ORDER BY e.sequence, e.created_at
        LIMIT 1)
"""
# What a dispatcher, a replay or a retry queued as waiting, looked at again once committed (SecondLooks). (Neither
# delivered nor dead, rather than pending: the primary key, not a pending-only index, whatever the statistics say;
# see RECORD_OUTCOME.)
PROMOTE_STRANDED_AMONG = """
UPDATE webhook_delivery d
   SET next_attempt_at = now()
 WHERE d.tenant_id = $1 AND d.id = ANY($2::uuid[]) AND d.status NOT IN ('delivered', 'dead')
   AND d.next_attempt_at = 'infinity'
   AND d.id = (
       SELECT e.id FROM webhook_delivery e
        WHERE e.tenant_id = $1 AND e.subscription_id = d.subscription_id AND e.ticket_id = d.ticket_id
          AND e.status = 'pending'
        ORDER BY e.sequence, e.created_at
        LIMIT 1)
"""

# (Read by the rare sweep only.) Tenant by tenant, one probe of the due index each, as DUE_TENANTS: a scan of the
# whole table for the waiting deliveries looked cheaper to the planner than the due index, when VACUUM had not yet
# removed the index's entries of deliveries no longer pending.
TENANTS_WITH_WAITING = """
SELECT t.id
  FROM tenant t
 WHERE EXISTS (
       SELECT 1
         FROM webhook_delivery d
        WHERE d.tenant_id = t.id AND d.status = 'pending' AND d.next_attempt_at = 'infinity'
          AND d.next_attempt_at > '-infinity')
"""

# The due index holds pending deliveries with next_attempt_at > '-infinity', true of every row: the statements that
# want the index say so, and the head lookups, which do not, cannot take it in place of the queue index whatever the
# statistics say (migration 2026-12-11); the listing index likewise requires created_at > '-infinity', which only the
# listing states (migration 2026-12-12T13). The queue index holds every delivery, keyed by its queue and status in
# sequence order: a head lookup is one descent of it.

# Tenants with due deliveries of active subscriptions (an inactive one's deliveries wait, and are not claimed).
# (Per tenant, the due index is read in time order up to the first due delivery of an active subscription: past the
# due deliveries of inactive subscriptions only: usually one per ticket queue, as later ones wait, and their
# deliveries of no ticket.)
DUE_TENANTS = """
SELECT t.id
  FROM tenant t
 WHERE EXISTS (
       SELECT 1
         FROM webhook_delivery d
        WHERE d.tenant_id = t.id AND d.status = 'pending' AND d.next_attempt_at <= now()
          AND d.next_attempt_at > '-infinity'
          AND (SELECT s.active FROM webhook_subscription s
                WHERE s.tenant_id = d.tenant_id AND s.id = d.subscription_id))
"""

# The end of both claiming statements (each takes the tenant as $1 and the lease as $3): the deliveries their `due` CTE
# has locked are leased for $3 seconds and returned with their subscriptions' address and secrets. Claimed rows are
# updated by primary key (an array of ids), and joined to their subscriptions only once updated: joined in the UPDATE, a
# tenant's subscriptions could drive it through the listing index (a generic plan did, beside 300 quiet subscriptions).
_LEASE_DUE = """
), claimed AS (
    UPDATE webhook_delivery d
       SET next_attempt_at = now() + make_interval(secs => $3), leased_until = now() + make_interval(secs => $3),
           attempts = d.attempts + 1, last_attempt_at = now()
     WHERE d.tenant_id = $1 AND d.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING d.id, d.subscription_id, d.ticket_id, d.message_id, d.body, d.attempts, d.created_at
)
SELECT c.id, c.subscription_id, c.ticket_id, c.message_id, c.body, c.attempts, c.created_at, s.url, s.secret,
       s.previous_secret, s.previous_secret_until, s.failing_since
  FROM claimed c
  JOIN webhook_subscription s ON s.tenant_id = $1 AND s.id = c.subscription_id
"""

# The due heads of their queues, of active subscriptions; the claim is a lease of $3 seconds. A queue is a
# subscription's deliveries of one ticket in sequence order; its head is its first pending delivery, found by one
# descent of the queue index (the only index a head lookup can use, see above). Deliveries of no ticket (pings, users'
# events) are each a queue of their own. A claim marks its attempt in flight until its outcome is recorded
# (leased_until, over once the lease has run out), so that a replay or a retry can tell (see INSERT_DELIVERIES).
# Whether a delivery's subscription is active is a subquery, not a join: joined, the subscriptions could drive the
# scan through the listing index, every delivery the subscription ever had (the test suite's statistics made a generic
# plan do just that). Then leased (_LEASE_DUE).
CLAIM_DELIVERIES = f"""
WITH due AS (
    SELECT d.id
      FROM webhook_delivery d
     WHERE d.tenant_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
       AND d.next_attempt_at > '-infinity'
       AND (SELECT s.active FROM webhook_subscription s WHERE s.tenant_id = $1 AND s.id = d.subscription_id)
       AND (d.ticket_id IS NULL OR d.id = (
           SELECT e.id FROM webhook_delivery e
            WHERE e.tenant_id = d.tenant_id AND e.subscription_id = d.subscription_id AND e.ticket_id = d.ticket_id
              AND e.status = 'pending'
            ORDER BY e.sequence, e.created_at
            LIMIT 1))
     ORDER BY d.next_attempt_at
     LIMIT $2
       FOR UPDATE OF d SKIP LOCKED{_LEASE_DUE}"""

# An attempt's outcome, only while the attempt still holds the delivery (the same attempt number, still pending): a
# worker that outlived its lease does not overwrite the next attempt's outcome. $10: when it was delivered (NULL
# otherwise), from the application, as Citus refuses now() inside CASE. A delivery that leaves its queue (delivered
# or dead) promotes its successor if that was waiting behind it (see INSERT_DELIVERIES); any outcome makes due an
# earlier event that a replay or a retry queued to wait for the attempt (the queue's head now, unless in flight).
# (An earlier head can otherwise only exist, waiting for its own retry, after two attempts of the queue were under
# way at once: the rare races in the README. It is made due too, one early retry.)
# "Still pending" is written as neither delivered nor dead (the only other statuses): `status = 'pending'` would let
# the pending-only indexes compete with the primary key, and on a table analysed while nearly empty the planner
# picks one and reads a whole backlog for one row (measured: 1,100 rows read, 4 ms, per delivery).
RECORD_OUTCOME = """
WITH recorded AS (
    UPDATE webhook_delivery
       SET status = $4, next_attempt_at = now() + make_interval(secs => $5), leased_until = NULL,
           last_status_code = $6, last_latency_ms = $7, last_error = $8, last_response = $9, delivered_at = $10
     WHERE tenant_id = $1 AND id = $2 AND attempts = $3 AND status NOT IN ('delivered', 'dead')
 RETURNING id, sequence, created_at
), promoted AS (
    UPDATE webhook_delivery d
       SET next_attempt_at = now()
      FROM recorded r
     WHERE d.tenant_id = $1 AND d.status NOT IN ('delivered', 'dead')
       AND (($4 <> 'pending' AND d.next_attempt_at = 'infinity')
            OR ((d.sequence, d.created_at) < (r.sequence, r.created_at) AND d.next_attempt_at > now()
                AND (d.leased_until IS NULL OR d.leased_until <= now())))
       AND d.id = (
           SELECT e.id FROM webhook_delivery e
            WHERE e.tenant_id = $1 AND e.subscription_id = $11 AND e.ticket_id = $12 AND e.status = 'pending'
              AND e.id <> $2
            ORDER BY e.sequence, e.created_at
            LIMIT 1)
)
SELECT count(*) FROM recorded
"""

# A failed attempt's delivery as it is now, locked until the outcome is recorded in the same transaction: a manual
# retry committed while the attempt was under way gave it a fresh horizon and restarted its backoff; one that comes
# meanwhile waits for the outcome (LOCK_RETRIED), then makes it due. Nothing while the attempt no longer holds the
# delivery (RECORD_OUTCOME would record nothing).
LOCK_FAILED_ATTEMPT = f"""
SELECT {select_list(RetryBasis)}
  FROM webhook_delivery
 WHERE tenant_id = $1 AND id = $2 AND attempts = $3 AND status NOT IN ('delivered', 'dead')
   FOR UPDATE
"""

# Successes recorded, and in the same statement the next delivery of each one's queue claimed (the head it has just
# become, when it is due and its subscription active), so that a busy ticket's events go out one after another
# without waiting for a claim round; the successes of many delivery tasks share one statement (see SuccessRecorder),
# at most one per queue (two of one queue would both find the same head). A success is recorded only while its
# attempt still holds the delivery (it had not lost its lease); nothing is claimed after one that was not. The
# recorded rows still read as pending in the statement's snapshot: they are excluded by id. Each row finds its own
# values in the arrays by its id's position (array_position, immutable), rather than in a join to unnest(): the
# UPDATE reads webhook_delivery alone, by primary key.
# The head is chosen among all pending deliveries of the queue, due or not, and only then locked if due (or waiting
# behind the delivery just recorded, see INSERT_DELIVERIES), or ahead of it (an earlier event a replay or a retry
# queued to wait for this attempt, unless in flight itself; as in RECORD_OUTCOME, one waiting for its own retry
# after a rare race goes early): a head that is leased or waiting for its retry stops the chain, never lets the
# delivery behind it go first. "Neither delivered nor dead" stands for pending where the primary key must be the way
# in (see RECORD_OUTCOME), and each head is named by a scalar subquery for the same reason.
# A waiting successor of a subscription that is off is made due instead (its next claim round takes it once it is on).
# Arguments: the tenant; the deliveries ($2, an array); the lease in seconds ($3, as CLAIM_DELIVERIES's); per
# delivery, in arrays in the same order, its attempt number, the status code, the latency and the response excerpt;
# when the statement records them as delivered ($8, from the application: a time of the batch, not of each delivery,
# whose latency is its own). Then leased (_LEASE_DUE).
DELIVERED_CLAIM_NEXT = f"""
WITH recorded AS (
    UPDATE webhook_delivery w
       SET status = 'delivered', next_attempt_at = now(), leased_until = NULL,
           last_status_code = ($5::integer[])[array_position($2::uuid[], w.id)],
           last_latency_ms = ($6::integer[])[array_position($2::uuid[], w.id)], last_error = NULL,
           last_response = ($7::text[])[array_position($2::uuid[], w.id)], delivered_at = $8
     WHERE w.tenant_id = $1 AND w.id = ANY($2::uuid[])
       AND w.attempts = ($4::integer[])[array_position($2::uuid[], w.id)]
       AND w.status NOT IN ('delivered', 'dead')
 RETURNING w.id, w.subscription_id, w.ticket_id, w.sequence, w.created_at
), head AS (
    SELECT r.subscription_id, r.sequence, r.created_at,
           (SELECT e.id
              FROM webhook_delivery e
             WHERE e.tenant_id = $1 AND e.subscription_id = r.subscription_id AND e.ticket_id = r.ticket_id
               AND e.status = 'pending' AND e.id <> ALL($2::uuid[])
             ORDER BY e.sequence, e.created_at
             LIMIT 1) AS id
      FROM recorded r
     WHERE r.ticket_id IS NOT NULL
), due AS (
    SELECT d.id
      FROM head h, webhook_delivery d, webhook_subscription s
     WHERE d.tenant_id = $1 AND d.id = ANY(ARRAY(SELECT id FROM head)) AND d.id = h.id
       AND d.status NOT IN ('delivered', 'dead')
       AND (d.next_attempt_at <= now() OR d.next_attempt_at = 'infinity'
            OR ((d.sequence, d.created_at) < (h.sequence, h.created_at)
                AND (d.leased_until IS NULL OR d.leased_until <= now())))
       AND s.tenant_id = $1 AND s.id = h.subscription_id AND s.active
       FOR UPDATE OF d SKIP LOCKED
), promoted AS (
    UPDATE webhook_delivery d
       SET next_attempt_at = now()
      FROM head h, webhook_subscription s
     WHERE d.tenant_id = $1 AND d.id = ANY(ARRAY(SELECT id FROM head)) AND d.id = h.id
       AND d.status NOT IN ('delivered', 'dead') AND d.next_attempt_at = 'infinity' AND s.tenant_id = $1
       AND s.id = h.subscription_id AND NOT s.active{_LEASE_DUE}"""

SUCCEEDED = """
UPDATE webhook_subscription SET failing_since = NULL
 WHERE tenant_id = $1 AND id = $2 AND failing_since IS NOT NULL
"""
FAILED = """
UPDATE webhook_subscription SET failing_since = coalesce(failing_since, $3)
 WHERE tenant_id = $1 AND id = $2
RETURNING failing_since
"""
DISABLE = """
UPDATE webhook_subscription SET active = false, disabled_reason = $3, updated_at = now(), updated_by = 'system'
 WHERE tenant_id = $1 AND id = $2 AND active
"""

# A retry locks its delivery first: an attempt's failure being recorded meanwhile (LOCK_FAILED_ATTEMPT) is waited for,
# and the statements below, each with a snapshot of its own, see its outcome.
LOCK_RETRIED = """
SELECT 1 FROM webhook_delivery WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3 FOR UPDATE
"""
# Then three statements (Citus refuses now() inside CASE, and a time from the application would be another
# clock): due now, unless it is pending and in flight itself or waiting behind an earlier delivery of its queue,
# which keep their turn (made due, the first would be sent a second time at once, the second only skipped by every
# claim round until its turn)...
RETRY_DUE = """
UPDATE webhook_delivery SET next_attempt_at = now()
 WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3 AND next_attempt_at <> 'infinity'
   AND NOT (status = 'pending' AND leased_until IS NOT NULL AND leased_until > now())
"""
# ... a delivered or dead one waits, as a replay's does (see INSERT_DELIVERIES), for a delivery of its queue in
# flight: until that attempt's lease ends (or its outcome makes it due sooner) if it is ahead of it, behind it at
# 'infinity'...
RETRY_WAIT = """
UPDATE webhook_delivery d
   SET next_attempt_at = CASE WHEN f.sequence <= d.sequence THEN 'infinity'::timestamptz ELSE f.leased_until END
  FROM webhook_delivery f
 WHERE d.tenant_id = $1 AND d.subscription_id = $2 AND d.id = $3 AND d.status <> 'pending'
   AND f.tenant_id = $1 AND f.id = (
       SELECT g.id
         FROM webhook_delivery g
        WHERE g.tenant_id = $1 AND g.subscription_id = $2 AND g.ticket_id = d.ticket_id AND g.status = 'pending'
          AND g.leased_until > now()
        ORDER BY g.sequence, g.created_at
        LIMIT 1)
"""
# ... then pending again, with a fresh retry horizon, and its backoff counted afresh from here.
RETRY = f"""
UPDATE webhook_delivery
   SET status = 'pending', expires_at = now() + make_interval(secs => $4), delivered_at = NULL,
       attempts_at_retry = attempts
 WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3
RETURNING {_DELIVERY}
"""


class WebhookRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- subscriptions

    async def insert(
        self,
        tenant_id: uuid.UUID,
        subscription_id: uuid.UUID,
        url: str,
        events: list[str] | None,
        description: str,
        active: bool,
        secret: str,
        actor: str,
    ) -> SubscriptionRow:
        row = await self._db.fetch_one(
            SubscriptionRow,
            INSERT_SUBSCRIPTION,
            tenant_id,
            subscription_id,
            url,
            events,
            description,
            active,
            secret,
            actor,
        )
        assert row is not None
        return row

    async def get(self, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> SubscriptionRow | None:
        return await self._db.fetch_one(
            SubscriptionRow,
            f"SELECT {_SUBSCRIPTION} FROM webhook_subscription WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            subscription_id,
        )

    async def list_all(self, tenant_id: uuid.UUID) -> list[SubscriptionRow]:
        return await self._db.fetch_all(
            SubscriptionRow,
            f"SELECT {_SUBSCRIPTION} FROM webhook_subscription WHERE tenant_id = $1 ORDER BY created_at, id",
            tenant_id,
        )

    async def update(
        self,
        tenant_id: uuid.UUID,
        subscription_id: uuid.UUID,
        url: str,
        events: list[str] | None,
        description: str,
        active: bool,
        actor: str,
    ) -> SubscriptionRow | None:
        return await self._db.fetch_one(
            SubscriptionRow, UPDATE_SUBSCRIPTION, tenant_id, subscription_id, url, events, description, active, actor
        )

    async def rotate(
        self, tenant_id: uuid.UUID, subscription_id: uuid.UUID, secret: str, overlap_seconds: float, actor: str
    ) -> SubscriptionRow | None:
        return await self._db.fetch_one(
            SubscriptionRow, ROTATE, tenant_id, subscription_id, secret, overlap_seconds, actor
        )

    async def delete(self, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM webhook_subscription WHERE tenant_id = $1 AND id = $2", tenant_id, subscription_id
        )
        return deleted > 0

    async def upsert_declared(
        self,
        tenant_id: uuid.UUID,
        subscription_id: uuid.UUID,
        url: str,
        events: list[str] | None,
        description: str,
        active: bool,
        secret: str,
        previous_secret_until: datetime.datetime,
    ) -> SubscriptionRow | None:
        """The subscription as the file declares it; None when it already was exactly that."""
        return await self._db.fetch_one(
            SubscriptionRow,
            UPSERT_DECLARED,
            tenant_id,
            subscription_id,
            url,
            events,
            description,
            active,
            secret,
            previous_secret_until,
        )

    async def delete_undeclared(self, tenant_id: uuid.UUID, keep: list[uuid.UUID]) -> int:
        """Remove the tenant's file-declared subscriptions the file no longer declares."""
        return await self._db.execute(
            "DELETE FROM webhook_subscription WHERE tenant_id = $1 AND declared AND NOT (id = ANY($2::uuid[]))",
            tenant_id,
            keep,
        )

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's webhook rows; rows removed per table."""
        execute = self._db.execute
        return {
            "webhook_delivery": await execute("DELETE FROM webhook_delivery WHERE tenant_id = $1", tenant_id),
            "webhook_subscription": await execute("DELETE FROM webhook_subscription WHERE tenant_id = $1", tenant_id),
        }

    # -- the outbox

    async def undispatched(self) -> list[Undispatched]:
        """The tenants with undispatched events, and in which outbox ('ticket' or 'user')."""
        return await self._db.fetch_all(Undispatched, UNDISPATCHED)

    async def lock_outbox(self, tenant_id: uuid.UUID) -> bool:
        """Whether this transaction now dispatches the tenant's events (False: another dispatcher does)."""
        locked: bool = await self._db.fetch_value(LOCK_OUTBOX, tenant_id)
        return locked

    async def take_events(self, tenant_id: uuid.UUID, limit: int) -> list[OutboxEvent]:
        """A batch of the tenant's undispatched events (see TAKE_EVENTS), by id, marked dispatched (by this
        transaction, which must hold the tenant's outbox)."""
        events = await self._db.fetch_all(OutboxEvent, TAKE_EVENTS, tenant_id, limit)
        return sorted(events, key=lambda event: event.id)

    async def claim_user_events(self, tenant_id: uuid.UUID, limit: int) -> list[UserEventRow]:
        """The tenant's oldest undispatched user events, locked until the transaction ends."""
        return await self._db.fetch_all(UserEventRow, CLAIM_USER_EVENTS, tenant_id, limit)

    async def mark_user_events_dispatched(self, tenant_id: uuid.UUID, event_ids: list[uuid.UUID]) -> None:
        await self._db.execute(MARK_USER_EVENTS_DISPATCHED, tenant_id, event_ids)

    async def active_subscriptions(self, tenant_id: uuid.UUID) -> list[SubscriptionRow]:
        return await self._db.fetch_all(
            SubscriptionRow,
            f"SELECT {_SUBSCRIPTION} FROM webhook_subscription WHERE tenant_id = $1 AND active ORDER BY id",
            tenant_id,
        )

    async def events(self, tenant_id: uuid.UUID, event_ids: list[int]) -> list[EventRow]:
        return await self._db.fetch_all(EventRow, EVENTS_BY_ID, tenant_id, event_ids)

    async def events_of_ticket(
        self, tenant_id: uuid.UUID, object_id: str, from_sequence: int, to_sequence: int, limit: int
    ) -> list[EventRow]:
        return await self._db.fetch_all(
            EventRow, EVENTS_OF_TICKET, tenant_id, object_id, from_sequence, to_sequence, limit
        )

    async def events_between(
        self, tenant_id: uuid.UUID, since: datetime.datetime, until: datetime.datetime, limit: int
    ) -> list[EventRow]:
        return await self._db.fetch_all(EventRow, EVENTS_BETWEEN, tenant_id, since, until, limit)

    async def queue(
        self,
        tenant_id: uuid.UUID,
        deliveries: list[NewDelivery],
        horizon_seconds: float,
        *,
        behind_failing_heads: bool = False,
    ) -> list[uuid.UUID]:
        """Queue deliveries, retried until `horizon_seconds` from now; returns those that wait behind an earlier
        one (see INSERT_DELIVERIES: with `behind_failing_heads`, also behind a head that has failed; whoever
        passes it looks again once committed). The others are due now, except (without `behind_failing_heads`: a
        replay) a queue's first one while a delivery of its queue is in flight: ahead of it, due when that attempt
        ends (at the latest when its lease does); behind it, waiting (returned): the attempt's success claims them,
        or, if it could not see them, the replay's second look frees them."""
        if not deliveries:
            return []
        rows = await self._db.fetch_all(
            _Queued,
            INSERT_DELIVERIES,
            tenant_id,
            [d.id for d in deliveries],
            [d.subscription_id for d in deliveries],
            [d.message_id for d in deliveries],
            [d.event_type for d in deliveries],
            [d.event_id for d in deliveries],
            [d.ticket_id for d in deliveries],
            [d.sequence for d in deliveries],
            [d.body for d in deliveries],
            horizon_seconds,
            behind_failing_heads,
        )
        return [row.id for row in rows if row.waiting]

    # -- deliveries

    async def tenants_with_due_deliveries(self) -> list[uuid.UUID]:
        tenants: list[uuid.UUID] = await self._db.fetch_column(DUE_TENANTS)
        return tenants

    async def claim(self, tenant_id: uuid.UUID, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        return await self._db.fetch_all(ClaimedDelivery, CLAIM_DELIVERIES, tenant_id, limit, lease_seconds)

    async def record_outcome(
        self,
        tenant_id: uuid.UUID,
        delivery: ClaimedDelivery,
        status: str,
        retry_in_seconds: float,
        status_code: int | None,
        latency_ms: int | None,
        error: str | None,
        response: str | None,
    ) -> bool:
        """Whether the outcome was recorded (False: this attempt had lost its lease to another)."""
        recorded: int = await self._db.fetch_value(
            RECORD_OUTCOME,
            tenant_id,
            delivery.id,
            delivery.attempts,
            status,
            retry_in_seconds,
            status_code,
            latency_ms,
            error,
            response,
            datetime.datetime.now(datetime.UTC) if status == "delivered" else None,
            delivery.subscription_id,
            delivery.ticket_id,
        )
        return recorded > 0

    async def lock_failed_attempt(self, tenant_id: uuid.UUID, delivery: ClaimedDelivery) -> RetryBasis | None:
        """Inside the transaction that records the failure (see LOCK_FAILED_ATTEMPT)."""
        return await self._db.fetch_one(RetryBasis, LOCK_FAILED_ATTEMPT, tenant_id, delivery.id, delivery.attempts)

    async def tenants_with_waiting_deliveries(self) -> list[uuid.UUID]:
        return await self._db.fetch_column(TENANTS_WITH_WAITING)

    async def promote_stranded(self, tenant_id: uuid.UUID) -> int:
        """Make due the tenant's deliveries waiting behind nothing (see INSERT_DELIVERIES); how many."""
        return await self._db.execute(PROMOTE_STRANDED, tenant_id)

    async def promote_stranded_among(self, tenant_id: uuid.UUID, delivery_ids: list[uuid.UUID]) -> int:
        return await self._db.execute(PROMOTE_STRANDED_AMONG, tenant_id, delivery_ids)

    async def delivered_claim_next(
        self, tenant_id: uuid.UUID, successes: Sequence[Success], lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Record successful attempts, each only if no later attempt has claimed its delivery, and claim the next
        delivery of each one's queue; the deliveries claimed, at most one per queue. At most one success of each
        queue: two would both claim the same next delivery."""
        if len({success.queue for success in successes}) < len(successes):
            raise ValueError("at most one success of each queue per statement")
        return await self._db.fetch_all(
            ClaimedDelivery,
            DELIVERED_CLAIM_NEXT,
            tenant_id,
            [success.delivery.id for success in successes],
            lease_seconds,
            [success.delivery.attempts for success in successes],
            [success.status_code for success in successes],
            [success.latency_ms for success in successes],
            [success.response for success in successes],
            datetime.datetime.now(datetime.UTC),
        )

    async def subscription_succeeded(self, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> None:
        await self._db.execute(SUCCEEDED, tenant_id, subscription_id)

    async def subscription_failed(
        self, tenant_id: uuid.UUID, subscription_id: uuid.UUID, now: datetime.datetime
    ) -> datetime.datetime | None:
        """Since when the subscription has been failing without a success."""
        since: datetime.datetime | None = await self._db.fetch_value(FAILED, tenant_id, subscription_id, now)
        return since

    async def disable(self, tenant_id: uuid.UUID, subscription_id: uuid.UUID, reason: str) -> None:
        await self._db.execute(DISABLE, tenant_id, subscription_id, reason)

    async def count_deliveries(self, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> int:
        total: int = await self._db.fetch_value(
            "SELECT count(*) FROM webhook_delivery WHERE tenant_id = $1 AND subscription_id = $2 "
            "AND created_at > '-infinity'",  # the listing index's condition (migration 2026-12-12T13)
            tenant_id,
            subscription_id,
        )
        return total

    async def deliveries(
        self, tenant_id: uuid.UUID, subscription_id: uuid.UUID, limit: int, offset: int
    ) -> list[DeliveryRow]:
        """Newest first."""
        return await self._db.fetch_all(
            DeliveryRow,
            f"SELECT {_DELIVERY} FROM webhook_delivery WHERE tenant_id = $1 AND subscription_id = $2 "
            "AND created_at > '-infinity' "  # the listing index's condition (migration 2026-12-12T13)
            "ORDER BY created_at DESC, sequence DESC NULLS LAST, id DESC LIMIT $3 OFFSET $4",
            tenant_id,
            subscription_id,
            limit,
            offset,
        )

    async def delivery(
        self, tenant_id: uuid.UUID, subscription_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> DeliveryRow | None:
        return await self._db.fetch_one(
            DeliveryRow,
            f"SELECT {_DELIVERY} FROM webhook_delivery WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3",
            tenant_id,
            subscription_id,
            delivery_id,
        )

    async def retry(
        self, tenant_id: uuid.UUID, subscription_id: uuid.UUID, delivery_id: uuid.UUID, horizon_seconds: float
    ) -> DeliveryRow | None:
        async with self._db.transaction():
            await self._db.execute(LOCK_RETRIED, tenant_id, subscription_id, delivery_id)
            await self._db.execute(RETRY_DUE, tenant_id, subscription_id, delivery_id)
            await self._db.execute(RETRY_WAIT, tenant_id, subscription_id, delivery_id)
            return await self._db.fetch_one(
                DeliveryRow, RETRY, tenant_id, subscription_id, delivery_id, horizon_seconds
            )
