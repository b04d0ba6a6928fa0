"""The status workflow and history: a ticket's pending time, and each event recording the ticket's state, type
version and pending time after it (with the status change's note), so any past version can be rebuilt exactly."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-11-22T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "status workflow and history"

STATEMENTS = [
    "ALTER TABLE ticket ADD COLUMN pending_until timestamptz",
    # The pending-close timer looks only at tickets that have a due time.
    "CREATE INDEX ticket_pending_until_idx ON ticket (pending_until) WHERE pending_until IS NOT NULL",
    "ALTER TABLE ticket_event ADD COLUMN state_id uuid, ADD COLUMN type_version integer, "
    "ADD COLUMN pending_until timestamptz, ADD COLUMN note text",
    # Before this migration no ticket ever changed state or pending time. A write stored the type version current
    # when it ran: the latest version saved before the event.
    """
    UPDATE ticket_event e
       SET state_id = t.state_id,
           type_version = coalesce(
               (SELECT max(v.version) FROM ticket_type_version v
                 WHERE v.tenant_id = e.tenant_id AND v.type_id = t.type_id AND v.created_at <= e.created_at),
               t.type_version)
      FROM ticket t
     WHERE t.tenant_id = e.tenant_id AND t.id = e.ticket_id
    """,
    "ALTER TABLE ticket_event ALTER COLUMN type_version SET NOT NULL",
]

# Undo, in reverse order: dropping the columns also undoes the backfill.
BACKWARDS = [
    "ALTER TABLE ticket_event DROP COLUMN note, DROP COLUMN pending_until, DROP COLUMN type_version, "
    "DROP COLUMN state_id",
    "DROP INDEX ticket_pending_until_idx",
    "ALTER TABLE ticket DROP COLUMN pending_until",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
