"""Invitations: an admin adds a built-in user without a password, and the user sets one with the invitation token
the admin was given (once). The token is 256 random bits, stored as its SHA-256 (nothing guesses 256 bits, so no slow
hash is needed), with its expiry; accepting it, a new password, or a change of status voids it."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-09T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "invitations of built-in users"

STATEMENTS = [
    "ALTER TABLE app_user ADD COLUMN invitation_hash text CHECK (invitation_hash ~ '^[0-9a-f]{64}$')",
    "ALTER TABLE app_user ADD COLUMN invitation_expires_at timestamptz",
    "ALTER TABLE app_user ADD CONSTRAINT app_user_invitation_check "
    "CHECK ((invitation_hash IS NULL) = (invitation_expires_at IS NULL))",
    "CREATE UNIQUE INDEX app_user_invitation_idx ON app_user (tenant_id, invitation_hash) "
    "WHERE invitation_hash IS NOT NULL",
]

BACKWARDS = [
    "DROP INDEX app_user_invitation_idx",
    "ALTER TABLE app_user DROP CONSTRAINT app_user_invitation_check",
    "ALTER TABLE app_user DROP COLUMN invitation_expires_at",
    "ALTER TABLE app_user DROP COLUMN invitation_hash",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
