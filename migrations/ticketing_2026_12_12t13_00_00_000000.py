"""A queue's head is one descent of the queue index, whatever the statistics say: the queue index keys on the status
and holds every delivery, and the listing index serves the deliveries list only.

The queue index held pending deliveries with a ticket only (WHERE status = 'pending' AND ticket_id IS NOT NULL).
Deliveries stop being pending within milliseconds, but their entries stay in the index until VACUUM, so ANALYZE finds
a handful of pending deliveries in an index of many pages, and the planner prices each entry at many pages. A generic
plan prices `subscription_id = $n` at the table's average deliveries per subscription, so with one busy subscription
among many quiet ones (300 with ten deliveries each, in the plan test) the listing index (tenant_id,
subscription_id, created_at) looked cheaper, and the head lookups read the busy subscription's whole history for
each head. With every delivery in the queue index and the status a key after the ticket, a head lookup's four
equalities are in the index's order; and the listing index now requires created_at > '-infinity' (true of every
row: the column is NOT NULL and never -infinity), which only the listing's statements state, so a head lookup
cannot use it at all (a fresh checkout's full suite found a generic plan that still did, on a listing index the
plan test's one-transaction deliveries, sharing one created_at, shrink by deduplication). The queue index leads with
(tenant_id, subscription_id): deleting a subscription finds its deliveries on it (the foreign key's cascade), as it
did on the listing index. Each delivery now has an entry in the queue index once it is delivered or dead too (one
more index entry per delivery, on the update that records its outcome).

Both indexes are rebuilt inside the migration's transaction, which holds webhook_delivery exclusively meanwhile:
deliveries and the webhook API wait for as long as the builds take (a few seconds per million deliveries kept).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-12T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the webhook queue index for every delivery, keyed on the status; the listing index for the listing only"

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
    CREATE INDEX webhook_delivery_queue_idx ON webhook_delivery (tenant_id, subscription_id, ticket_id, sequence,
                                                                 created_at)
     WHERE status = 'pending' AND ticket_id IS NOT NULL
    """,
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
