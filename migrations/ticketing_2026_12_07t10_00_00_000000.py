"""The realm of a ticket's creator, next to its subject: a customer-level caller sees the tickets it created, and two
realms of one tenant may issue the same `sub` to different people, so the subject alone does not say who that was.

Tickets created before are given their creator's realm from the users directory where the subject belongs to exactly
one realm of the tenant; any other keeps NULL, and a NULL realm matches no customer (agents still see the ticket).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-07T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the realm of a ticket's creator"

STATEMENTS = [
    "ALTER TABLE ticket ADD COLUMN created_realm text",
    """
    UPDATE ticket SET created_realm = known.realm
      FROM (
        SELECT tenant_id, subject, min(realm) AS realm FROM app_user GROUP BY tenant_id, subject HAVING count(*) = 1
      ) AS known
     WHERE ticket.tenant_id = known.tenant_id AND ticket.created_by = known.subject
    """,
]

BACKWARDS = ["ALTER TABLE ticket DROP COLUMN created_realm"]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
