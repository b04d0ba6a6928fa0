"""People on a ticket and deletion: who a ticket is assigned to, and when it was deleted.

`assignee` is a subject of the tenant (NULL: unassigned); `created_by` already exists. Both get an index, leading
with tenant_id, for the list filters and a customer's "my tickets". A deleted ticket keeps its row (`deleted_at`
set): its events reference it and stay readable for audit, and its display ID stays taken.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-02T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ticket assignee and deletion"

STATEMENTS = [
    "ALTER TABLE ticket ADD COLUMN assignee text",
    "ALTER TABLE ticket ADD COLUMN deleted_at timestamptz",
    "CREATE INDEX ticket_assignee_idx ON ticket (tenant_id, assignee)",
    "CREATE INDEX ticket_created_by_idx ON ticket (tenant_id, created_by)",
]

BACKWARDS = [
    "DROP INDEX ticket_created_by_idx",
    "DROP INDEX ticket_assignee_idx",
    "ALTER TABLE ticket DROP COLUMN deleted_at",
    "ALTER TABLE ticket DROP COLUMN assignee",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
