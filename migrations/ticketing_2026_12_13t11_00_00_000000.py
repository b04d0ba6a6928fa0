"""Dispatch batches take whole prefixes of tickets: each ticket's waiting events by sequence.

A batch took a tenant's oldest undispatched events by id. Where one node hands out the ids (one PostgreSQL) a
ticket's events have ids in its sequence order, as each is written under the ticket's row lock after the one before
committed; on Citus with writes through several nodes, each handing out ids from its own range, a ticket's earlier
event can have the higher id, and a batch could take its later event and leave the earlier one to the next batch:
sent out of order. A batch now takes the tickets among the oldest events, and of each ticket its first undispatched
events by sequence (TAKE_EVENTS), which this partial index serves: it holds only the waiting events, so it stays small
however long the history grows (one more index entry per event written).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-13T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dispatch batches take whole prefixes of tickets"

STATEMENTS = [
    "CREATE INDEX ticket_event_undispatched_ticket_idx ON ticket_event (tenant_id, ticket_id, sequence) "
    "WHERE dispatched_at IS NULL"
]

BACKWARDS = ["DROP INDEX ticket_event_undispatched_ticket_idx"]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
