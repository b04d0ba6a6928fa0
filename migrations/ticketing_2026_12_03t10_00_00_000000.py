"""Webhooks: subscriptions, their deliveries, and ticket_event as the outbox they are fed from.

ticket_event is the transactional outbox: every change already writes its event in the same statement, so an event
exists exactly when its change committed. `dispatched_at` stays NULL until a dispatcher has turned the event into
one delivery per matching subscription (in the transaction that sets it); the partial index holds only those
waiting events, so it stays small however long the history grows. Events written before this migration are not
sent anywhere: the column is added with a constant default (no table rewrite) that marks them dispatched, and the
default is then dropped so new events start NULL.

A delivery carries its body, fixed when it was queued, so every attempt (and a retry) sends the same bytes under the
same `webhook-id`. Deliveries of one (subscription, ticket) are sent one at a time in the order of the ticket's event
`sequence`: the queue index serves the "is there an earlier pending one?" check; the due index serves the workers'
claims.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-03T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhooks"

STATEMENTS = [
    "ALTER TABLE ticket_event ADD COLUMN dispatched_at timestamptz DEFAULT '-infinity'",
    "ALTER TABLE ticket_event ALTER COLUMN dispatched_at DROP DEFAULT",
    "CREATE INDEX ticket_event_undispatched_idx ON ticket_event (tenant_id, id) WHERE dispatched_at IS NULL",
    """
    CREATE TABLE webhook_subscription (
        tenant_id        uuid NOT NULL REFERENCES tenant (id),
        id               uuid NOT NULL,
        url              text NOT NULL,
        -- NULL: every event type.
        events           text[],
        description      text NOT NULL DEFAULT '',
        active           boolean NOT NULL,
        secret           text NOT NULL,
        -- After a rotation the previous secret signs too, until previous_secret_until.
        previous_secret  text,
        previous_secret_until timestamptz,
        -- Why the service disabled it (NULL: it did not).
        disabled_reason  text,
        -- When its deliveries began failing without a success since (NULL: not failing).
        failing_since    timestamptz,
        -- Declared in the tenant file (then its secret comes from the environment variable it names).
        declared         boolean NOT NULL DEFAULT false,
        created_at       timestamptz NOT NULL,
        created_by       text NOT NULL,
        updated_at       timestamptz NOT NULL,
        updated_by       text NOT NULL,
        PRIMARY KEY (tenant_id, id)
    )
    """,
    """
    CREATE TABLE webhook_delivery (
        tenant_id        uuid NOT NULL,
        id               uuid NOT NULL,
        subscription_id  uuid NOT NULL,
        message_id       text NOT NULL,
        event_type       text NOT NULL,
        -- NULL for a test ping, which belongs to no ticket's queue.
        event_id         bigint,
        ticket_id        uuid,
        sequence         integer,
        body             text NOT NULL,
        status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
        attempts         integer NOT NULL DEFAULT 0,
        -- While pending: when it is next due (a claimed attempt pushes it past its timeout: a lease).
        next_attempt_at  timestamptz NOT NULL,
        -- Retries stop (dead-letter) once this has passed.
        expires_at       timestamptz NOT NULL,
        last_attempt_at  timestamptz,
        last_status_code integer,
        last_latency_ms  integer,
        last_error       text,
        last_response    text,
        created_at       timestamptz NOT NULL,
        delivered_at     timestamptz,
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, subscription_id) REFERENCES webhook_subscription (tenant_id, id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (tenant_id, next_attempt_at) WHERE status = 'pending'",
    """
    CREATE INDEX webhook_delivery_queue_idx ON webhook_delivery (tenant_id, subscription_id, ticket_id, sequence,
                                                                 created_at) WHERE status = 'pending'
    """,
    "CREATE INDEX webhook_delivery_list_idx ON webhook_delivery (tenant_id, subscription_id, created_at)",
]

# Undo, in reverse order.
BACKWARDS = [
    "DROP INDEX webhook_delivery_list_idx",
    "DROP INDEX webhook_delivery_queue_idx",
    "DROP INDEX webhook_delivery_due_idx",
    "DROP TABLE webhook_delivery",
    "DROP TABLE webhook_subscription",
    "DROP INDEX ticket_event_undispatched_idx",
    "ALTER TABLE ticket_event DROP COLUMN dispatched_at",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
