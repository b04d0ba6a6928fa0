"""The due index serves the claims and the queue index the head lookups, whatever the statistics say.

The due index (tenant_id, next_attempt_at) and the queue index (tenant_id, subscription_id, ticket_id, sequence,
created_at) both held every pending delivery, so either could serve a head lookup (one subscription's pending
deliveries of one ticket, in sequence order) or a claim's scan for due deliveries. Pending deliveries come and go
within milliseconds, so ANALYZE nearly always finds few of them and the planner rates both indexes as tiny: measured
under the benchmark's load, the generic plans looked for each head on the due index, reading and sorting every
pending delivery of the tenant, which costs more as deliveries fall behind, exactly when they must be cheapest; and
in the test suite a claim's scan took the queue index, reading every pending delivery to find the due ones.

Each index now has a condition only its own statements state, so that the other cannot use it: the due index
requires next_attempt_at > '-infinity' (true of every row: the column is NOT NULL and never -infinity), which the
statements looking for due or waiting deliveries state; the queue index requires ticket_id IS NOT NULL, which a head
lookup's ticket_id = ... implies (deliveries of no ticket are queues of their own and have no head to look up).

The indexes are rebuilt inside the migration's transaction, which holds webhook_delivery exclusively meanwhile:
deliveries and the webhook API wait for as long as the builds take (a few seconds per million deliveries kept).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-11T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the webhook due and queue indexes each serve their own statements only"

STATEMENTS = [
    "DROP INDEX webhook_delivery_due_idx",
    """
    CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (tenant_id, next_attempt_at)
     WHERE status = 'pending' AND next_attempt_at > '-infinity'
    """,
    "DROP INDEX webhook_delivery_queue_idx",
    """
    CREATE INDEX webhook_delivery_queue_idx ON webhook_delivery (tenant_id, subscription_id, ticket_id, sequence,
                                                                 created_at)
     WHERE status = 'pending' AND ticket_id IS NOT NULL
    """,
]

BACKWARDS = [
    "DROP INDEX webhook_delivery_queue_idx",
    """
    CREATE INDEX webhook_delivery_queue_idx ON webhook_delivery (tenant_id, subscription_id, ticket_id, sequence,
                                                                 created_at) WHERE status = 'pending'
    """,
    "DROP INDEX webhook_delivery_due_idx",
    "CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (tenant_id, next_attempt_at) WHERE status = 'pending'",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
