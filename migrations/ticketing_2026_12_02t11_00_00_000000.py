"""Each ticket event records the ticket's assignee after it, as it records the state and pending time: the history
shows an assignment's old and new assignee (the one before comes from the previous event), and an as-of read
rebuilds who the ticket was assigned to then."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-02T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ticket event assignee"

# No backfill: before this migration no ticket was ever assigned, so NULL is what every earlier event recorded.
STATEMENTS = ["ALTER TABLE ticket_event ADD COLUMN assignee text"]

BACKWARDS = ["ALTER TABLE ticket_event DROP COLUMN assignee"]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
