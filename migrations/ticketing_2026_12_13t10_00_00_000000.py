"""A manual retry starts the delivery's backoff afresh: attempts_at_retry is its attempt count when a tenant admin
last retried it, and the backoff doubles with the attempts made since (before, a dead delivery retried by hand that
failed again waited the maximum backoff, an hour by default, however soon its receiver had been fixed).

A constant default: PostgreSQL adds the column without rewriting the table.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-13T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "a manual retry restarts the webhook delivery's backoff"

STATEMENTS = ["ALTER TABLE webhook_delivery ADD COLUMN attempts_at_retry integer NOT NULL DEFAULT 0"]

BACKWARDS = ["ALTER TABLE webhook_delivery DROP COLUMN attempts_at_retry"]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
