"""The listing index serves the deliveries list only; the queue index serves the head lookups and the subscription's
cascade.

The listing index (tenant_id, subscription_id, created_at) held every delivery, so a head lookup (one subscription's
pending deliveries of one ticket, in sequence order) could read the subscription's deliveries on it, and a generic
plan did when the statistics made a subscription look small: a fresh checkout's full test suite found one that the
previous run had not (the plan test's busy subscription among 300 quiet ones, whose deliveries the test writes in
one transaction, so that they share one created_at and the listing index shrinks to a few pages by deduplication).
Rather than depend on the planner's arithmetic, the listing index now requires created_at > '-infinity' (true of
every row: the column is NOT NULL and never -infinity), which only the listing's statements state; a head lookup
cannot use it. The queue index drops its condition (ticket_id IS NOT NULL): it leads with (tenant_id,
subscription_id), so deleting a subscription finds its deliveries on it (the foreign key's cascade), as it did on the
listing index.

Both indexes are rebuilt inside the migration's transaction, which holds webhook_delivery exclusively meanwhile:
deliveries and the webhook API wait for as long as the builds take (a few seconds per million deliveries kept).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-12T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the webhook listing index for the listing only; the queue index for every delivery"

STATEMENTS = [
    "DROP INDEX webhook_delivery_queue_idx",
    """
    CREATE INDEX webhook_delivery_queue_idx ON webhook_delivery (tenant_id, subscription_id, ticket_id, status,
                                                                 sequence, created_at)
    """,
    "DROP INDEX webhook_delivery_list_idx",
    """
    CREATE INDEX webhook_delivery_list_idx ON webhook_delivery (tenant_id, subscription_id, created_at)
     WHERE created_at > '-infinity'
    """,
]

BACKWARDS = [
    "DROP INDEX webhook_delivery_list_idx",
    "CREATE INDEX webhook_delivery_list_idx ON webhook_delivery (tenant_id, subscription_id, created_at)",
    "DROP INDEX webhook_delivery_queue_idx",
    """
    CREATE INDEX webhook_delivery_queue_idx ON webhook_delivery (tenant_id, subscription_id, ticket_id, status,
                                                                 sequence, created_at)
     WHERE ticket_id IS NOT NULL
    """,
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
