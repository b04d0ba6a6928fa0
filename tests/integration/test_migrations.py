"""The migrations through Piccolo on a fresh database of their own: forwards one at a time, backwards (each step
restores exactly the schema before it, and rolling back everything leaves only Piccolo's migration table), and
forwards again to the very same schema. The per-ticket event sequence's backfill, the idempotency keys' conversion
to digests, the ticket states' integer ids (seed 003's numbering) and the realms of tickets' creators are
checked on rows written before their migrations.

The shared `ticketing` test database is never touched: Piccolo's engine points at the fresh database only inside
the test, and back at what it pointed to before afterwards."""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from piccolo.apps.migrations.commands.backwards import run_backwards
from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.apps.migrations.commands.forwards import run_forwards

from app.db import engine
from app.db.piccolo_app import APP_CONFIG
from app.db.piccolo_conf import DB
from app.idempotency.service import scope_digest

APP = APP_CONFIG.app_name
EVENT_SEQUENCE_MIGRATION = "2026-12-01T08:00:00:000000"
IDEMPOTENCY_DIGEST_MIGRATION = "2026-12-02T09:00:00:000000"
STATE_SERIAL_MIGRATION = "2026-12-06T10:00:00:000000"
CREATOR_REALM_MIGRATION = "2026-12-07T10:00:00:000000"
# Seed 003's default states in its numbering (its ids 1 to 7), and a state created after them.
SEED_STATES = ["new", "open", "pending reminder", "closed", "merged", "removed", "pending close"]
# A key claimed before the digest migration, stored as its scope: realm, subject (any text) and key.
OLD_KEY = ("acme-dev", "sub with a newline\nand ünïcödé", "retry-1")

# Everything a migration defines in the public schema, in a stable order, as PostgreSQL itself spells it.
SNAPSHOT_QUERIES = {
    "relations": """
        SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
               a.attcollation::regcollation::text
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, 2""",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, c.contype::text, pg_get_constraintdef(c.oid)
          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = 'public' ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    "sequences": """
        SELECT sequencename, data_type::text, start_value, min_value, max_value, increment_by, cycle, cache_size
          FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1""",
    "triggers": """
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1, 2""",
}

Snapshot = dict[str, list[tuple[Any, ...]]]


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """An empty database on the test cluster, with Piccolo's engine pointed at it until the block ends."""
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = with_database(database_url, name)
        previous = DB.config.get("dsn")
        engine.configure(dsn)
        try:
            yield dsn
        finally:
            if previous is None:
                DB.config.pop("dsn", None)
            else:
                engine.configure(previous)
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def snapshot(connection: asyncpg.Connection) -> Snapshot:
    return {part: [tuple(row) for row in await connection.fetch(query)] for part, query in SNAPSHOT_QUERIES.items()}


async def applied(connection: asyncpg.Connection) -> list[str]:
    names: list[str] = await connection.fetchval(
        "SELECT coalesce(array_agg(name ORDER BY id), '{}') FROM migration WHERE app_name = $1", APP
    )
    return names


async def tables(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
    )
    return {row["relname"] for row in rows}


def migration_ids() -> list[str]:
    finder = BaseMigrationManager()
    return finder.get_migration_ids(finder.get_migration_modules(APP_CONFIG.resolved_migrations_folder_path))


async def forwards_to(migration_id: str) -> None:
    result = await run_forwards(app_name=APP, migration_id=migration_id)
    assert result.success, result.message


async def backwards_to(migration_id: str) -> None:
    result = await run_backwards(app_name=APP, migration_id=migration_id, auto_agree=True)
    assert result.success, result.message


TENANT = uuid.UUID("33333333-3333-4333-8333-333333333333")
TYPE = uuid.UUID("44444444-4444-4444-8444-444444444444")


async def write_tickets_and_events(connection: asyncpg.Connection) -> dict[str, uuid.UUID]:
    """A tenant, a type and three tickets, as the schema before the event sequence has them: A with three events
    and B with two, interleaved (so event ids alone are no per-ticket sequence), and C with none."""
    await connection.execute(
        "INSERT INTO tenant (id, slug, name, config, config_hash) VALUES ($1, 'migrations', 'Migrations', '{}', '0')",
        TENANT,
    )
    await connection.execute(
        "INSERT INTO ticket_type (tenant_id, id, prefix, version, definition, created_by, updated_by) "
        "VALUES ($1, $2, 'MIG', 1, '{}', 'test', 'test')",
        TENANT,
        TYPE,
    )
    tickets: dict[str, uuid.UUID] = {}
    for number, name in enumerate("ABC", start=1):
        tickets[name] = await connection.fetchval(
            "INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, created_by, updated_by) "
            "VALUES ($1, $2, $3, 1, '{}', 'test', 'test') RETURNING id",
            TENANT,
            f"MIG-{number:04d}",
            TYPE,
        )
    for name in "ABABA":
        await connection.execute(
            "INSERT INTO ticket_event (tenant_id, ticket_id, kind, changes, actor, request_id, etag, type_version) "
            "VALUES ($1, $2, 'ticket.updated', '{}', 'test', 'request', gen_random_uuid(), 1)",
            TENANT,
            tickets[name],
        )
    return tickets


async def check_backfill(connection: asyncpg.Connection, tickets: dict[str, uuid.UUID]) -> None:
    names = {ticket_id: name for name, ticket_id in tickets.items()}
    events = await connection.fetch("SELECT ticket_id, sequence FROM ticket_event ORDER BY id")
    assert [(names[row["ticket_id"]], row["sequence"]) for row in events] == [
        ("A", 1),
        ("B", 1),
        ("A", 2),
        ("B", 2),
        ("A", 3),
    ]
    rows = await connection.fetch("SELECT id, event_sequence FROM ticket WHERE tenant_id = $1", TENANT)
    assert {names[row["id"]]: row["event_sequence"] for row in rows} == {"A": 3, "B": 2, "C": 0}


async def write_states(connection: asyncpg.Connection) -> None:
    """The seven default states written together (one transaction, so one creation time), in an order that is not
    seed 003's, and a state written after them."""
    async with connection.transaction():
        for name in reversed(SEED_STATES):
            await connection.execute(
                "INSERT INTO ticket_state (tenant_id, name, state_type, created_by, updated_by) "
                "VALUES ($1, $2, $2, 'system', 'system')",
                TENANT,
                name,
            )
    await connection.execute(
        "INSERT INTO ticket_state (tenant_id, name, state_type, created_by, updated_by, created_at) "
        "VALUES ($1, 'in progress', 'open', 'admin', 'admin', now() + interval '1 second')",
        TENANT,
    )


async def check_state_serials(connection: asyncpg.Connection) -> None:
    rows = await connection.fetch("SELECT name, serial FROM ticket_state WHERE tenant_id = $1 ORDER BY serial", TENANT)
    assert [(row["name"], row["serial"]) for row in rows] == [
        *((name, number) for number, name in enumerate(SEED_STATES, start=1)),
        ("in progress", 8),
    ]
    assert await connection.fetchval("SELECT last FROM ticket_state_serial WHERE tenant_id = $1", TENANT) == 8


SOLO_TENANT = uuid.UUID("55555555-5555-4555-8555-555555555555")


async def write_users_of_two_realms(connection: asyncpg.Connection) -> None:
    """Tickets A to C were created by `test`, a user known before them; D by `twice`, a subject both realms have;
    E by `late`, a user first seen after the ticket; F by a built-in service account. A tenant with one realm has a
    ticket by a subject the directory does not know."""
    tickets = [(TENANT, "MIG-0004", "twice"), (TENANT, "MIG-0005", "late"), (TENANT, "MIG-0006", "service-account-crm")]
    await connection.execute(
        "INSERT INTO tenant (id, slug, name, config, config_hash) "
        """VALUES ($1, 'solo', 'Solo', '{"realms": [{"name": "only"}]}', '0')""",
        SOLO_TENANT,
    )
    await connection.execute(
        "INSERT INTO ticket_type (tenant_id, id, prefix, version, definition, created_by, updated_by) "
        "VALUES ($1, $2, 'MIG', 1, '{}', 'test', 'test')",
        SOLO_TENANT,
        TYPE,
    )
    tickets.append((SOLO_TENANT, "MIG-0001", "stranger"))
    for tenant_id, object_id, creator in tickets:
        await connection.execute(
            "INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, created_by, updated_by) "
            "VALUES ($1, $2, $3, 1, '{}', $4, $4)",
            tenant_id,
            object_id,
            TYPE,
            creator,
        )
    known_before = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    for realm, subject, seen in (
        ("mig-main", "test", known_before),
        ("mig-main", "twice", known_before),
        ("mig-builtin", "twice", known_before),
        ("mig-main", "late", datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC)),
    ):
        await connection.execute(
            "INSERT INTO app_user (tenant_id, id, realm, subject, builtin, role, status, created_at, updated_at) "
            "VALUES ($1, gen_random_uuid(), $2, $3, false, 'customer', 'active', $4, $4)",
            TENANT,
            realm,
            subject,
            seen,
        )
    await connection.execute(
        "INSERT INTO service_client (tenant_id, realm, client_id, secret_hash, roles, scopes) "
        "VALUES ($1, 'mig-builtin', 'crm', repeat('0', 64), '{}', '{}')",
        TENANT,
    )


async def check_creator_realms(connection: asyncpg.Connection) -> None:
    """Placed where certain or well founded; `twice` and `late` stay unplaced (NULL matches no customer)."""
    rows = await connection.fetch("SELECT tenant_id, object_id, created_realm FROM ticket")
    assert {(row["tenant_id"] == SOLO_TENANT, row["object_id"]): row["created_realm"] for row in rows} == {
        (False, "MIG-0001"): "mig-main",
        (False, "MIG-0002"): "mig-main",
        (False, "MIG-0003"): "mig-main",
        (False, "MIG-0004"): None,
        (False, "MIG-0005"): None,
        (False, "MIG-0006"): "mig-builtin",
        (True, "MIG-0001"): "only",
    }


async def write_old_key(connection: asyncpg.Connection) -> None:
    await connection.execute(
        "INSERT INTO idempotency_key (tenant_id, key, request_hash, response) VALUES ($1, $2, 'hash', '{}')",
        TENANT,
        "\n".join(OLD_KEY),
    )


async def check_digest(connection: asyncpg.Connection) -> None:
    """The key claimed before the migration is found under the digest the application computes: it still
    replays."""
    stored = await connection.fetch("SELECT tenant_id, scope_digest, request_hash FROM idempotency_key")
    assert [tuple(row) for row in stored] == [(TENANT, scope_digest(*OLD_KEY), "hash")]


def check_schema(schema: Snapshot) -> None:
    """What the code relies on, spelled out; the snapshot comparisons cover everything else."""
    assert {name for name, kind in schema["relations"] if kind == "r"} == {
        "migration",
        "tenant",
        "ticket_type",
        "ticket_type_version",
        "display_id_sequence",
        "ticket",
        "ticket_event",
        "idempotency_key",
        "ticket_state",
        "ticket_comment",
        "attachment",
        "webhook_subscription",
        "webhook_delivery",
        "app_user",
        "service_client",
        "user_event",
        "login_failure",
        "ticket_state_serial",
        "actor_number",
    }
    columns = {(row[0], row[2]): row[3:6] for row in schema["columns"]}
    assert columns["ticket_event", "sequence"] == ("integer", True, None)
    assert columns["ticket", "event_sequence"] == ("integer", True, "0")
    assert columns["ticket_event", "type_version"] == ("integer", True, None)
    assert columns["ticket", "pending_until"] == ("timestamp with time zone", False, None)
    assert columns["idempotency_key", "scope_digest"] == ("bytea", True, None)
    assert columns["ticket_event", "comment_id"] == ("uuid", False, None)
    assert columns["ticket_event", "internal"] == ("boolean", True, "false")
    assert columns["ticket_event", "attachment_id"] == ("uuid", False, None)
    assert columns["attachment", "comment_id"] == ("uuid", False, None)
    # NULL until dispatched to webhooks: no default, so new events start undispatched.
    assert columns["ticket_event", "dispatched_at"] == ("timestamp with time zone", False, None)
    assert columns["ticket_state", "serial"] == ("bigint", True, None)
    constraints = {row[1]: row[3] for row in schema["constraints"]}
    assert constraints["ticket_event_sequence_key"] == "UNIQUE (tenant_id, ticket_id, sequence)"
    assert constraints["tenant_slug_check"] == "CHECK ((slug ~ '^[a-z][a-z0-9-]{1,62}$'::text))"
    assert constraints["ticket_type_prefix_check"] == "CHECK ((prefix ~ '^[A-Z]{2,5}$'::text))"
    assert constraints["idempotency_key_pkey"] == "PRIMARY KEY (tenant_id, scope_digest)"
    assert constraints["ticket_comment_pkey"] == "PRIMARY KEY (tenant_id, id)"
    assert constraints["ticket_comment_sequence_key"] == "UNIQUE (tenant_id, ticket_id, sequence)"
    assert constraints["attachment_pkey"] == "PRIMARY KEY (tenant_id, id)"
    assert constraints["attachment_tenant_id_ticket_id_fkey"] == (
        "FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticket(tenant_id, id)"
    )
    indexes = {row[1]: row[2] for row in schema["indexes"]}
    assert "ticket_event_ticket_idx" not in indexes
    assert indexes["ticket_pending_until_idx"] == (
        "CREATE INDEX ticket_pending_until_idx ON public.ticket USING btree (tenant_id, pending_until) "
        "WHERE (pending_until IS NOT NULL)"
    )
    assert indexes["idempotency_key_created_idx"] == (
        "CREATE INDEX idempotency_key_created_idx ON public.idempotency_key USING btree (tenant_id, created_at)"
    )
    assert indexes["attachment_ticket_idx"] == (
        "CREATE INDEX attachment_ticket_idx ON public.attachment USING btree (tenant_id, ticket_id, sequence)"
    )


async def test_migrations_apply_roll_back_and_apply_again_to_the_same_schema(database_url: str) -> None:
    ids = migration_ids()
    assert {
        EVENT_SEQUENCE_MIGRATION,
        IDEMPOTENCY_DIGEST_MIGRATION,
        STATE_SERIAL_MIGRATION,
        CREATOR_REALM_MIGRATION,
    } <= set(ids)
    async with fresh_database(database_url) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            # Forwards one at a time, remembering the schema after each; rows are written just before the event
            # sequence's migration, to check its backfill.
            after: list[Snapshot] = []
            for migration_id in ids:
                if migration_id == EVENT_SEQUENCE_MIGRATION:
                    tickets = await write_tickets_and_events(connection)
                if migration_id == IDEMPOTENCY_DIGEST_MIGRATION:
                    await write_old_key(connection)
                if migration_id == STATE_SERIAL_MIGRATION:
                    await write_states(connection)
                if migration_id == CREATOR_REALM_MIGRATION:
                    await write_users_of_two_realms(connection)
                await forwards_to(migration_id)
                if migration_id == CREATOR_REALM_MIGRATION:
                    await check_creator_realms(connection)
                if migration_id == STATE_SERIAL_MIGRATION:
                    await check_state_serials(connection)
                if migration_id == EVENT_SEQUENCE_MIGRATION:
                    await check_backfill(connection, tickets)
                if migration_id == IDEMPOTENCY_DIGEST_MIGRATION:
                    await check_digest(connection)
                after.append(await snapshot(connection))
            assert await applied(connection) == ids
            # Events from before webhooks existed count as dispatched: they are never sent.
            assert await connection.fetchval("SELECT count(*) FROM ticket_event WHERE dispatched_at IS NULL") == 0
            first = after[-1]
            check_schema(first)

            # Everything back: nothing of ours remains, and Piccolo records no migration as applied.
            await engine.rollback_all()
            assert await tables(connection) == {"migration"}
            assert await applied(connection) == []

            # And forwards again, all at once: the very same schema.
            await engine.migrate()
            assert await applied(connection) == ids
            assert await snapshot(connection) == first

            # Backwards one at a time: each migration's backwards step restores the schema from before it.
            for index in reversed(range(len(ids))):
                await backwards_to(ids[index])
                assert await applied(connection) == ids[:index]
                if index > 0:
                    assert await snapshot(connection) == after[index - 1], ids[index]
            assert await tables(connection) == {"migration"}
        finally:
            await connection.close()
