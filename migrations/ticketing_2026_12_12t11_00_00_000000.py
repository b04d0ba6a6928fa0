"""A queue's head is one descent of the queue index, whatever the statistics say: the status is one of its keys.

The queue index held pending deliveries only (WHERE status = 'pending'). Deliveries stop being pending within
milliseconds, but their entries stay in the index until VACUUM, so ANALYZE finds a handful of pending deliveries in
an index of many pages, and the planner prices each entry at many pages. A generic plan prices
`subscription_id = $n` at the table's average deliveries per subscription, so with one busy subscription among
many quiet ones (300 with ten deliveries each, in the test) the listing index (tenant_id, subscription_id,
created_at) looked cheaper, and the head lookups read the busy subscription's whole history for each head. With
every delivery of a ticket in the index and the status a key after the ticket, a head lookup's equalities on all
four leading keys, in the index's order, make it the cheapest plan for any statistics.

Each delivery now has an entry in the index once it is delivered or dead too (one more index entry per delivery, on
the update that records its outcome); the index keeps the condition ticket_id IS NOT NULL, so a claim's scan for due
deliveries cannot take it (see the migration of 2026-12-11).

The index is rebuilt inside the migration's transaction, which holds webhook_delivery exclusively meanwhile:
deliveries and the webhook API wait for as long as the build takes (a few seconds per million deliveries kept).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-12T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the webhook queue index keys on the status, for every delivery of a ticket"

STATEMENTS = [
    "DROP INDEX webhook_delivery_queue_idx",
    """
    CREATE INDEX webhook_delivery_queue_idx ON webhook_delivery (tenant_id, subscription_id, ticket_id, status,
                                                                 sequence, created_at)
     WHERE ticket_id IS NOT NULL
    """,
]

BACKWARDS = [
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
