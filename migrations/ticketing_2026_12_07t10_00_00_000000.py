"""The realm of a ticket's creator, next to its subject: a customer-level caller sees the tickets it created, and two
realms of one tenant may issue the same `sub` to different people, so the subject alone does not say who that was.

Tickets created before are given their creator's realm where it is certain or well founded: the tenant's only realm;
else the realm of the built-in service account (`service-account-<client id>`) of that client id; else the realm of
the one user of the directory with that subject who was known when the ticket was created. Any other keeps NULL, and
a NULL realm matches no customer (agents still see the ticket). Workers of the previous release insert tickets
without a realm: stop them before this release starts (README, Upgrading).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-07T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the realm of a ticket's creator"

STATEMENTS = [
    "ALTER TABLE ticket ADD COLUMN created_realm text",
    """
    UPDATE ticket SET created_realm = tenant.config -> 'realms' -> 0 ->> 'name'
      FROM tenant
     WHERE ticket.tenant_id = tenant.id AND jsonb_array_length(tenant.config -> 'realms') = 1
    """,
    """
    UPDATE ticket SET created_realm = placed.realm
      FROM (
        SELECT tenant_id, client_id, min(realm) AS realm FROM service_client
         GROUP BY tenant_id, client_id HAVING count(*) = 1
      ) AS placed
     WHERE ticket.created_realm IS NULL AND ticket.tenant_id = placed.tenant_id
       AND ticket.created_by = 'service-account-' || placed.client_id
    """,
    """
    UPDATE ticket SET created_realm = placed.realm
      FROM (
        SELECT t.tenant_id, t.id, min(u.realm) AS realm
          FROM ticket t
          JOIN app_user u ON u.tenant_id = t.tenant_id AND u.subject = t.created_by AND u.created_at <= t.created_at
         WHERE t.created_realm IS NULL
         GROUP BY t.tenant_id, t.id HAVING count(*) = 1
      ) AS placed
     WHERE ticket.tenant_id = placed.tenant_id AND ticket.id = placed.id
    """,
]

BACKWARDS = ["ALTER TABLE ticket DROP COLUMN created_realm"]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
