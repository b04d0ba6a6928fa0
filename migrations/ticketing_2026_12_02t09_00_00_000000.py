"""Idempotency keys are stored as a fixed-size digest of their scope, and the sweep of expired keys has an index.

The key column held the scope itself (realm, subject and key, newline-separated). A token's subject has no limit
short of the token's own 8 KiB, and a btree index row cannot exceed about 2.7 kB: a long subject made the claim's
INSERT fail (a 500). Its SHA-256 is 32 bytes whatever the subject; the existing rows are converted to the very digest
the application computes, so keys claimed before the upgrade still replay.

The sweep deleted `created_at < $2` per tenant with no index on created_at: (tenant_id, created_at) serves it and
the query that finds the tenants with expired keys.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-02T09:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "idempotency key digests and sweep index"

STATEMENTS = [
    "ALTER TABLE idempotency_key ALTER COLUMN key TYPE bytea USING sha256(convert_to(key, 'UTF8'))",
    "ALTER TABLE idempotency_key RENAME COLUMN key TO scope_digest",
    "ALTER TABLE idempotency_key ADD CONSTRAINT idempotency_key_scope_digest_check "
    "CHECK (octet_length(scope_digest) = 32)",
    "CREATE INDEX idempotency_key_created_idx ON idempotency_key (tenant_id, created_at)",
]

# A digest cannot be turned back into its key: going back forgets the keys (retries within their time to live are
# then written again, as without a key).
BACKWARDS = [
    "DROP INDEX idempotency_key_created_idx",
    "ALTER TABLE idempotency_key DROP CONSTRAINT idempotency_key_scope_digest_check",
    "DELETE FROM idempotency_key",
    "ALTER TABLE idempotency_key RENAME COLUMN scope_digest TO key",
    "ALTER TABLE idempotency_key ALTER COLUMN key TYPE text USING encode(key, 'hex')",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
