"""user.created reaches webhooks: the users' events join the outbox, with their own `dispatched_at` (NULL until the
dispatcher has queued their deliveries). Events recorded before count as dispatched: they are never sent, as ticket
events from before webhooks existed were not."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-08T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "users' events in the webhook outbox"

STATEMENTS = [
    "ALTER TABLE user_event ADD COLUMN dispatched_at timestamptz",
    "UPDATE user_event SET dispatched_at = created_at",
    "CREATE INDEX user_event_undispatched_idx ON user_event (tenant_id, created_at, id) WHERE dispatched_at IS NULL",
]

BACKWARDS = [
    "DROP INDEX user_event_undispatched_idx",
    "ALTER TABLE user_event DROP COLUMN dispatched_at",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
