"""Ticket states, configurable per tenant (seed 003's model), and each ticket's current state."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-11-22T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ticket states"

STATEMENTS = [
    """
    CREATE TABLE ticket_state (
        tenant_id         uuid NOT NULL REFERENCES tenant (id),
        id                uuid NOT NULL DEFAULT gen_random_uuid(),
        name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        state_type        text NOT NULL CHECK (state_type IN
                              ('new', 'open', 'pending reminder', 'pending close', 'closed', 'merged', 'removed')),
        next_state_id     uuid,
        ignore_escalation boolean NOT NULL DEFAULT false,
        default_create    boolean NOT NULL DEFAULT false,
        default_follow_up boolean NOT NULL DEFAULT false,
        note              text,
        active            boolean NOT NULL DEFAULT true,
        created_at        timestamptz NOT NULL DEFAULT now(),
        created_by        text NOT NULL,
        updated_at        timestamptz NOT NULL DEFAULT now(),
        updated_by        text NOT NULL,
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, next_state_id) REFERENCES ticket_state (tenant_id, id),
        CHECK (next_state_id IS DISTINCT FROM id)
    )
    """,
    "CREATE UNIQUE INDEX ticket_state_name_idx ON ticket_state (tenant_id, lower(name))",
    # At most one of each default per tenant; "exactly one" is kept by the service, which refuses to remove the last.
    "CREATE UNIQUE INDEX ticket_state_default_create_idx ON ticket_state (tenant_id) WHERE default_create AND active",
    "CREATE UNIQUE INDEX ticket_state_default_follow_up_idx ON ticket_state (tenant_id) "
    "WHERE default_follow_up AND active",
    "ALTER TABLE ticket ADD COLUMN state_id uuid",
    "ALTER TABLE ticket ADD FOREIGN KEY (tenant_id, state_id) REFERENCES ticket_state (tenant_id, id)",
    "CREATE INDEX ticket_state_id_idx ON ticket (tenant_id, state_id)",
]

# Undo, in reverse order. Dropping ticket.state_id also drops its foreign key (whose name PostgreSQL generated).
BACKWARDS = [
    "DROP INDEX ticket_state_id_idx",
    "ALTER TABLE ticket DROP COLUMN state_id",
    "DROP INDEX ticket_state_default_follow_up_idx",
    "DROP INDEX ticket_state_default_create_idx",
    "DROP INDEX ticket_state_name_idx",
    "DROP TABLE ticket_state",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
