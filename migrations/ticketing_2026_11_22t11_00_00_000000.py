"""Tenants: one row per file in tenants/, synced by `python -m app tenants sync` and at start-up."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-11-22T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenant table"

STATEMENTS = [
    """
    CREATE TABLE tenant (
        id          uuid PRIMARY KEY,
        slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{1,62}$'),
        name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        config      jsonb NOT NULL,
        config_hash text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
]

# Undo: the exact reverse of STATEMENTS.
BACKWARDS = [
    "DROP TABLE tenant",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
