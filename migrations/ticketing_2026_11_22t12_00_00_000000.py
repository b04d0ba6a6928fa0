"""Ticket types (versioned), tickets with JSONB data and an etag, their event log, display-ID sequences and
idempotency keys. Every key starts with tenant_id: tenant scoping is structural."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-11-22T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ticket types, tickets, events"

STATEMENTS = [
    """
    CREATE TABLE ticket_type (
        tenant_id   uuid NOT NULL REFERENCES tenant (id),
        id          uuid NOT NULL,
        prefix      text NOT NULL CHECK (prefix ~ '^[A-Z]{2,5}$'),
        version     integer NOT NULL CHECK (version >= 1),
        definition  jsonb NOT NULL,
        archived_at timestamptz,
        created_at  timestamptz NOT NULL DEFAULT now(),
        created_by  text NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        updated_by  text NOT NULL,
        PRIMARY KEY (tenant_id, id),
        -- An archived type keeps its prefix: display IDs are never reused.
        UNIQUE (tenant_id, prefix)
    )
    """,
    """
    CREATE TABLE ticket_type_version (
        tenant_id  uuid NOT NULL,
        type_id    uuid NOT NULL,
        version    integer NOT NULL,
        definition jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        PRIMARY KEY (tenant_id, type_id, version),
        FOREIGN KEY (tenant_id, type_id) REFERENCES ticket_type (tenant_id, id)
    )
    """,
    """
    CREATE TABLE display_id_sequence (
        tenant_id  uuid NOT NULL REFERENCES tenant (id),
        prefix     text NOT NULL,
        last_value bigint NOT NULL,
        PRIMARY KEY (tenant_id, prefix)
    )
    """,
    """
    CREATE TABLE ticket (
        tenant_id    uuid NOT NULL,
        id           uuid NOT NULL DEFAULT gen_random_uuid(),
        object_id    text NOT NULL,
        type_id      uuid NOT NULL,
        type_version integer NOT NULL,
        data         jsonb NOT NULL,
        etag         uuid NOT NULL DEFAULT gen_random_uuid(),
        created_at   timestamptz NOT NULL DEFAULT now(),
        created_by   text NOT NULL,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        updated_by   text NOT NULL,
        PRIMARY KEY (tenant_id, id),
        UNIQUE (tenant_id, object_id),
        FOREIGN KEY (tenant_id, type_id) REFERENCES ticket_type (tenant_id, id)
    )
    """,
    "CREATE INDEX ticket_created_idx ON ticket (tenant_id, created_at, id)",
    "CREATE INDEX ticket_updated_idx ON ticket (tenant_id, updated_at, id)",
    "CREATE INDEX ticket_type_idx ON ticket (tenant_id, type_id, created_at, id)",
    "CREATE INDEX ticket_data_idx ON ticket USING gin (data jsonb_path_ops)",
    """
    CREATE TABLE ticket_event (
        tenant_id  uuid NOT NULL,
        id         bigint GENERATED ALWAYS AS IDENTITY,
        ticket_id  uuid NOT NULL,
        kind       text NOT NULL,
        changes    jsonb NOT NULL,
        actor      text NOT NULL,
        request_id text NOT NULL,
        support    boolean NOT NULL DEFAULT false,
        etag       uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticket (tenant_id, id)
    )
    """,
    "CREATE INDEX ticket_event_ticket_idx ON ticket_event (tenant_id, ticket_id, id)",
    """
    CREATE TABLE idempotency_key (
        tenant_id    uuid NOT NULL REFERENCES tenant (id),
        key          text NOT NULL,
        request_hash text NOT NULL,
        response     jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, key)
    )
    """,
]

# Undo: everything in reverse order (dropping a table would drop its indexes too; naming them keeps the mirror).
BACKWARDS = [
    "DROP TABLE idempotency_key",
    "DROP INDEX ticket_event_ticket_idx",
    "DROP TABLE ticket_event",
    "DROP INDEX ticket_data_idx",
    "DROP INDEX ticket_type_idx",
    "DROP INDEX ticket_updated_idx",
    "DROP INDEX ticket_created_idx",
    "DROP TABLE ticket",
    "DROP TABLE display_id_sequence",
    "DROP TABLE ticket_type_version",
    "DROP TABLE ticket_type",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
