"""Tokens of built-in users and service accounts end when their credentials change: a user's role change or password
reset, and a service account given a new secret (re-created after a revocation, too), set `tokens_valid_after`, and
tokens issued before it (their `iat`) are refused from then on. NULL: no token of theirs has been ended that way."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-10T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tokens issued before a change of credentials are refused"

STATEMENTS = [
    "ALTER TABLE app_user ADD COLUMN tokens_valid_after timestamptz",
    "ALTER TABLE service_client ADD COLUMN tokens_valid_after timestamptz",
]

BACKWARDS = [
    "ALTER TABLE service_client DROP COLUMN tokens_valid_after",
    "ALTER TABLE app_user DROP COLUMN tokens_valid_after",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
