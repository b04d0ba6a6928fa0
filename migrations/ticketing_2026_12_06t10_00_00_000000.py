"""Seed 003's integer ids: each ticket state gets a number, stable and unique in its tenant, next to its UUID; and
each acting subject a number in its tenant, for seed 003's created_by_id / updated_by_id.

Existing states are numbered per tenant in the order they were created, states created together in seed 003's
order of their types (new, open, pending reminder, closed, merged, removed, pending close: the seven default states
get seed 003's ids 1 to 7). New states take the tenant's next number when they are inserted (under the tenant's
state lock). Numbers are never reused: a deleted state's number stays unused, like a display ID.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-06T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "integer ids of ticket states and actors (seed 003)"

STATEMENTS = [
    "ALTER TABLE ticket_state ADD COLUMN serial bigint",
    """
    UPDATE ticket_state SET serial = numbered.serial
      FROM (
        SELECT tenant_id, id, row_number() OVER (
                 PARTITION BY tenant_id
                 ORDER BY created_at,
                          array_position(ARRAY['new', 'open', 'pending reminder', 'closed', 'merged', 'removed',
                                               'pending close'], state_type),
                          name
               ) AS serial
          FROM ticket_state
      ) AS numbered
     WHERE ticket_state.tenant_id = numbered.tenant_id AND ticket_state.id = numbered.id
    """,
    "ALTER TABLE ticket_state ALTER COLUMN serial SET NOT NULL",
    "CREATE UNIQUE INDEX ticket_state_serial_idx ON ticket_state (tenant_id, serial)",
    # The highest number a tenant's states ever had, so a deleted state's number is never given out again.
    """
    CREATE TABLE ticket_state_serial (
        tenant_id uuid PRIMARY KEY REFERENCES tenant (id),
        last      bigint NOT NULL
    )
    """,
    "INSERT INTO ticket_state_serial (tenant_id, last) "
    "SELECT tenant_id, max(serial) FROM ticket_state GROUP BY tenant_id",
    """
    CREATE TABLE actor_number (
        tenant_id uuid NOT NULL REFERENCES tenant (id),
        number    bigint NOT NULL,
        subject   text NOT NULL,
        PRIMARY KEY (tenant_id, number)
    )
    """,
    "CREATE UNIQUE INDEX actor_number_subject_idx ON actor_number (tenant_id, subject)",
]

BACKWARDS = [
    "DROP TABLE actor_number",
    "DROP TABLE ticket_state_serial",
    "DROP INDEX ticket_state_serial_idx",
    "ALTER TABLE ticket_state DROP COLUMN serial",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
