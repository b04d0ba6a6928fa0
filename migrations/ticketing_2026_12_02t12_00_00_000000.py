"""Finding tickets: full-text search and the list's indexes.

`search` is the ticket's text as a tsvector, a stored generated column: PostgreSQL computes it in the very statement
that writes the ticket, so a ticket is findable the moment its write is acknowledged (no index that lags behind). It
holds the display ID (weight A, so a match on it ranks first), spelt both as the parser reads it ("REQ-0042": `req`
and `-0042`, which the query "REQ-0042" finds) and split at the hyphen (`0042` alone finds it too), and every string
in `data` at any depth (weight D), through the 'simple' configuration: no language, no stemming, no stop words, which
suits every tenant alike. jsonb_to_tsvector('simple', data, '["string"]') would index the same strings, but it cannot
be bounded, and a tsvector larger than 1 MB is an error: a ticket with much text would fail to save. The strings are
therefore taken as a JSON array's text (`jsonb_path_query_array`), their escapes blanked out, and cut at 100,000
characters, at most about 600 kB of tsvector whatever the text. Every function used is IMMUTABLE with the regconfig
named, as a generated column requires.

The list's other indexes become partial (`WHERE deleted_at IS NULL`, as every list query says), so a filtered list's
exact total is an index-only count that never reads the table. Those of the orders (created_at, updated_at, and the
type filter's) end with (created_at, id) or (updated_at, id): a page is a walk of one index. Those of the state,
assignee and creator filters hold just (tenant_id, value): few distinct values, which B-tree deduplication stores
once each, so they stay small (7 MB for a million tickets instead of 161 MB with (created_at, id) added; counting
from either takes the same time); a page of a common value walks the creation-order index, a rare one is sorted
after a bitmap scan. The plain (tenant_id, state_id) index stays for the foreign key and the state's reference
check, which must see deleted tickets too.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-02T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ticket search and list indexes"

STATEMENTS = [
    r"""
    ALTER TABLE ticket ADD COLUMN search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, object_id || ' ' || replace(object_id, '-', ' ')), 'A')
        || to_tsvector('simple'::regconfig, left(regexp_replace(
               jsonb_path_query_array(data, 'strict $.** ? (@.type() == "string")')::text,
               '\\(u[0-9a-fA-F]{4}|.)', ' ', 'g'), 100000))
    ) STORED
    """,
    "CREATE INDEX ticket_search_idx ON ticket USING gin (search)",
    "DROP INDEX ticket_created_idx",
    "DROP INDEX ticket_updated_idx",
    "DROP INDEX ticket_type_idx",
    "DROP INDEX ticket_assignee_idx",
    "DROP INDEX ticket_created_by_idx",
    "CREATE INDEX ticket_created_idx ON ticket (tenant_id, created_at, id) WHERE deleted_at IS NULL",
    "CREATE INDEX ticket_updated_idx ON ticket (tenant_id, updated_at, id) WHERE deleted_at IS NULL",
    "CREATE INDEX ticket_type_idx ON ticket (tenant_id, type_id, created_at, id) WHERE deleted_at IS NULL",
    "CREATE INDEX ticket_list_state_idx ON ticket (tenant_id, state_id) WHERE deleted_at IS NULL",
    "CREATE INDEX ticket_assignee_idx ON ticket (tenant_id, assignee) WHERE deleted_at IS NULL",
    "CREATE INDEX ticket_created_by_idx ON ticket (tenant_id, created_by) WHERE deleted_at IS NULL",
]

BACKWARDS = [
    "DROP INDEX ticket_created_by_idx",
    "DROP INDEX ticket_assignee_idx",
    "DROP INDEX ticket_list_state_idx",
    "DROP INDEX ticket_type_idx",
    "DROP INDEX ticket_updated_idx",
    "DROP INDEX ticket_created_idx",
    "CREATE INDEX ticket_created_by_idx ON ticket (tenant_id, created_by)",
    "CREATE INDEX ticket_assignee_idx ON ticket (tenant_id, assignee)",
    "CREATE INDEX ticket_type_idx ON ticket (tenant_id, type_id, created_at, id)",
    "CREATE INDEX ticket_updated_idx ON ticket (tenant_id, updated_at, id)",
    "CREATE INDEX ticket_created_idx ON ticket (tenant_id, created_at, id)",
    "DROP INDEX ticket_search_idx",
    "ALTER TABLE ticket DROP COLUMN search",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
