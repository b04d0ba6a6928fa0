"""Per-ticket event sequence (placeholder until the Piccolo-style migrations land)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T08:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "per-ticket event sequence"

STATEMENTS = [
    "ALTER TABLE ticket_event ADD COLUMN sequence integer",
    """
    UPDATE ticket_event e SET sequence = n.sequence
      FROM (SELECT tenant_id, id, row_number() OVER (PARTITION BY tenant_id, ticket_id ORDER BY id) AS sequence
              FROM ticket_event) n
     WHERE e.tenant_id = n.tenant_id AND e.id = n.id
    """,
    "ALTER TABLE ticket_event ALTER COLUMN sequence SET NOT NULL",
    "ALTER TABLE ticket_event ADD CONSTRAINT ticket_event_sequence_key UNIQUE (tenant_id, ticket_id, sequence)",
    "DROP INDEX ticket_event_ticket_idx",
    "ALTER TABLE ticket ADD COLUMN event_sequence integer NOT NULL DEFAULT 0",
    """
    UPDATE ticket t SET event_sequence =
        (SELECT count(*) FROM ticket_event e WHERE e.tenant_id = t.tenant_id AND e.ticket_id = t.id)
    """,
    "DROP INDEX ticket_pending_until_idx",
    "CREATE INDEX ticket_pending_until_idx ON ticket (tenant_id, pending_until) WHERE pending_until IS NOT NULL",
]


class RawTable(Table):
    pass


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)

    async def run() -> None:
        for statement in STATEMENTS:
            await RawTable.raw(statement.replace("{", "{{").replace("}", "}}"))

    manager.add_raw(run)
    return manager
