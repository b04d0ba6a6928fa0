"""Finding a webhook queue's head may use only the queue index, whatever the statistics say.

The due index (tenant_id, next_attempt_at) and the queue index (tenant_id, subscription_id, ticket_id, sequence,
created_at) both held every pending delivery, so a head lookup (one subscription's pending deliveries of one ticket,
in sequence order) could use either. Pending deliveries come and go within milliseconds, so ANALYZE nearly always
finds few of them and the planner rates both indexes as tiny: measured under the benchmark's load, the generic plans
took the due index, reading every pending delivery of the tenant and sorting them for each head, which costs more as
deliveries fall behind, exactly when they must be cheapest. The due index now also requires
next_attempt_at > '-infinity' (true of every row: the column is NOT NULL and never -infinity), which the claims that
want it state and the head lookups do not, so they cannot use it.

The index is rebuilt inside the migration's transaction, which holds webhook_delivery exclusively meanwhile:
deliveries and the webhook API wait for as long as the build takes (a few seconds per million deliveries kept).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-11T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook queue heads found on the queue index only"

STATEMENTS = [
    "DROP INDEX webhook_delivery_due_idx",
    """
    CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (tenant_id, next_attempt_at)
     WHERE status = 'pending' AND next_attempt_at > '-infinity'
    """,
]

BACKWARDS = [
    "DROP INDEX webhook_delivery_due_idx",
    "CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (tenant_id, next_attempt_at) WHERE status = 'pending'",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
