"""Users by subject: a webhook body names its actor (seed 004's `updated_by`: id, name, email) from the users
directory, where the event records the actor's subject only, as the v1 surface names seed 004's people
(app/user/people.py, by UserRepository.by_subjects).

The unique (tenant_id, realm, subject) index puts the realm before the subject, so a lookup by subject alone would read
every user of the tenant.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-12T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "users by subject, for the actors webhook bodies name"

STATEMENTS = ["CREATE INDEX app_user_subject_idx ON app_user (tenant_id, subject)"]

BACKWARDS = ["DROP INDEX app_user_subject_idx"]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
