"""A per-ticket event sequence: each event gets its number within its ticket (1 for the creation, then one more per
change), and each ticket the number of its last event, which the write statements bump under the ticket's row lock.

History was ordered by the event's identity column, which follows a ticket's events only while every write goes
through one node: with writes through several nodes (e.g. Citus, where nodes hand out ids from their own ranges)
the ids of one ticket's events need not be in their order. A number taken from the locked ticket row is, on any
number of nodes; and webhooks need the number too, to tell consumers each event's place in its ticket's history.
The unique (tenant_id, ticket_id, sequence) index also serves reading a ticket's events, so the old
(tenant_id, ticket_id, id) index goes; the pending-close index leads with tenant_id so the sweep can run per tenant.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-01T08:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "per-ticket event sequence"

STATEMENTS = [
    "ALTER TABLE ticket_event ADD COLUMN sequence integer",
    # Existing events are numbered per ticket in id order: until now every write went through one node.
    """
    UPDATE ticket_event e
       SET sequence = n.sequence
      FROM (SELECT tenant_id, id,
                   row_number() OVER (PARTITION BY tenant_id, ticket_id ORDER BY id) AS sequence
              FROM ticket_event) n
     WHERE e.tenant_id = n.tenant_id AND e.id = n.id
    """,
    "ALTER TABLE ticket_event ALTER COLUMN sequence SET NOT NULL",
    "ALTER TABLE ticket_event ADD CONSTRAINT ticket_event_sequence_key UNIQUE (tenant_id, ticket_id, sequence)",
    "DROP INDEX ticket_event_ticket_idx",
    # The sequence number of the ticket's last event (0: none yet).
    "ALTER TABLE ticket ADD COLUMN event_sequence integer NOT NULL DEFAULT 0",
    """
    UPDATE ticket t
       SET event_sequence = (SELECT count(*) FROM ticket_event e
                              WHERE e.tenant_id = t.tenant_id AND e.ticket_id = t.id)
    """,
    "DROP INDEX ticket_pending_until_idx",
    "CREATE INDEX ticket_pending_until_idx ON ticket (tenant_id, pending_until) WHERE pending_until IS NOT NULL",
]

# Undo, in reverse order, back to the indexes as they were; dropping the columns also undoes the backfills.
BACKWARDS = [
    "DROP INDEX ticket_pending_until_idx",
    "CREATE INDEX ticket_pending_until_idx ON ticket (pending_until) WHERE pending_until IS NOT NULL",
    "ALTER TABLE ticket DROP COLUMN event_sequence",
    "CREATE INDEX ticket_event_ticket_idx ON ticket_event (tenant_id, ticket_id, id)",
    "ALTER TABLE ticket_event DROP CONSTRAINT ticket_event_sequence_key",
    "ALTER TABLE ticket_event DROP COLUMN sequence",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
