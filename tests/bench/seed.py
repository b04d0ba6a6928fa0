"""Seeding tickets directly in SQL, and the few reads the benchmark needs from the database."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from tests.bench.environment import CUSTOMER_SUBJECT

T = TypeVar("T")

# One ticket per n, numbered like the app's CREATE does it: at least four digits, never truncated (a bare
# lpad(n, 4) would cut 10000 down to '1000'). Every CUSTOMER_SHARE-th ticket was created by the bench's customer in
# the tenant's realm ($12, $13): the GET load reads those with the customer's token.
SEED = """
INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, created_at, created_by, created_realm,
                    updated_at, updated_by)
SELECT $1, 'REQ-' || lpad(n::text, greatest(4, length(n::text)), '0'), $2, $3,
       jsonb_build_object(
           $4::text, 'Seeded request ' || n,
           $5::text, 'A request seeded by make bench, number ' || n || '.',
           $6::text, (ARRAY['low', 'normal', 'high', 'urgent'])[1 + n % 4],
           $7::text, 'requester' || n || '@bench.example',
           $8::text, '[]'::jsonb,
           $9::text, 0,
           $10::text, 'api'),
       now() - make_interval(secs => $11 - n), CASE WHEN n % $14 = 0 THEN $12 ELSE 'bench-seed' END, $13,
       now() - make_interval(secs => $11 - n), 'bench-seed'
  FROM generate_series(1, $11::int) AS n
"""

SEQUENCE = """
INSERT INTO display_id_sequence (tenant_id, prefix, last_value) VALUES ($1, 'REQ', $2)
ON CONFLICT (tenant_id, prefix) DO UPDATE SET last_value = excluded.last_value
"""

CUSTOMER_SHARE = 4

SEEDED_FIELDS = ("title", "description", "priority", "requester_email", "tags", "counter", "source")


@dataclass(frozen=True)
class SeedTarget:
    tenant_id: uuid.UUID
    type_id: uuid.UUID
    type_version: int
    field_ids: dict[str, str]
    realm: str


def run_sql(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def main() -> T:
        conn = await asyncpg.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


def seed(dsn: str, targets: list[SeedTarget], per_tenant: int) -> None:
    async def work(conn: asyncpg.Connection) -> None:
        for target in targets:
            fields = [target.field_ids[key] for key in SEEDED_FIELDS]
            async with conn.transaction():
                await conn.execute(
                    SEED,
                    target.tenant_id,
                    target.type_id,
                    target.type_version,
                    *fields,
                    per_tenant,
                    CUSTOMER_SUBJECT,
                    target.realm,
                    CUSTOMER_SHARE,
                )
                await conn.execute(SEQUENCE, target.tenant_id, per_tenant)
        await conn.execute("VACUUM ANALYZE")

    run_sql(dsn, work)


def current_etags(dsn: str, tickets: list[tuple[uuid.UUID, str]]) -> dict[tuple[uuid.UUID, str], str]:
    async def work(conn: asyncpg.Connection) -> dict[tuple[uuid.UUID, str], str]:
        rows = await conn.fetch(
            "SELECT t.tenant_id, t.object_id, t.etag FROM ticket t "
            "JOIN unnest($1::uuid[], $2::text[]) AS k(tenant_id, object_id) USING (tenant_id, object_id)",
            [tenant for tenant, _ in tickets],
            [object_id for _, object_id in tickets],
        )
        return {(row["tenant_id"], row["object_id"]): str(row["etag"]) for row in rows}

    return run_sql(dsn, work)


def scalar(dsn: str, sql: str, *args: Any) -> Any:
    async def work(conn: asyncpg.Connection) -> Any:
        return await conn.fetchval(sql, *args)

    return run_sql(dsn, work)


def execute(dsn: str, sql: str) -> None:
    async def work(conn: asyncpg.Connection) -> None:
        await conn.execute(sql)

    run_sql(dsn, work)


# The scale run's tickets (tests/bench/scale.py): one tenant, numbers first..last, with values spread the way a help
# desk's are (most tickets closed, a few urgent), each drawn from its own hash of the number so that no two are
# correlated. A title is "<Noun> <problem> on floor <k>": one noun in 40 and one problem in 25, so a two-word search
# such as "router offline" matches about one ticket in a thousand.
SCALE_NOUNS = [
    "printer",
    "laptop",
    "monitor",
    "keyboard",
    "projector",
    "door",
    "window",
    "heater",
    "elevator",
    "light",
    "socket",
    "phone",
    "router",
    "badge",
    "scanner",
    "desk",
    "chair",
    "coffee machine",
    "fridge",
    "toilet",
    "shower",
    "lock",
    "camera",
    "alarm",
    "fan",
    "screen",
    "cable",
    "mouse",
    "headset",
    "server",
    "switch",
    "tablet",
    "charger",
    "vpn",
    "mailbox",
    "account",
    "license",
    "whiteboard",
    "parking gate",
    "sink",
]
SCALE_PROBLEMS = [
    "jammed",
    "broken",
    "not working",
    "flickering",
    "noisy",
    "missing",
    "leaking",
    "stuck",
    "slow",
    "overheating",
    "offline",
    "locked",
    "cracked",
    "dirty",
    "loose",
    "beeping",
    "frozen",
    "unresponsive",
    "too cold",
    "too warm",
    "blocked",
    "damaged",
    "out of paper",
    "disconnected",
    "misaligned",
]
# One state per twentieth of the tickets: 12 closed, 3 open, 3 new, 1 merged, 1 removed.
SCALE_STATES = ["closed"] * 12 + ["open"] * 3 + ["new"] * 3 + ["merged", "removed"]
# Priorities by twentieth: 6 low, 10 normal, 3 high, 1 urgent.
SCALE_PRIORITIES = ["low"] * 6 + ["normal"] * 10 + ["high"] * 3 + ["urgent"]

SCALE_SEED = """
INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, state_id, assignee, created_at, created_by,
                    updated_at, updated_by)
SELECT $1, 'REQ-' || lpad(n::text, greatest(4, length(n::text)), '0'), $2, $3,
       jsonb_build_object(
           $4::text, initcap(w.noun) || ' ' || w.problem || ' on floor ' || n % 40,
           $5::text, 'The ' || w.noun || ' in room ' || n % 997 || ' is ' || w.problem || '. Reported by customer '
                     || n % 5000 || '.',
           $6::text, ($16::text[])[1 + (hashint4(n) & 2147483647) % 20],
           $7::text, 'customer' || n % 5000 || '@scale.example',
           $8::text, '[]'::jsonb,
           $9::text, n % 1000,
           $10::text, 'api'),
       s.id, CASE WHEN n % 5 = 0 THEN NULL ELSE 'agent-' || n % 40 END,
       $11::timestamptz + make_interval(secs => n * 90), 'customer-' || n % 5000,
       $11::timestamptz + make_interval(secs => n * 90 + n % 7200), 'agent-' || n % 40
  FROM generate_series($12::int, $13::int) AS n
 CROSS JOIN LATERAL (SELECT ($14::text[])[1 + n % 40] AS noun, ($15::text[])[1 + (n / 40) % 25] AS problem) AS w
  JOIN ticket_state s ON s.tenant_id = $1 AND s.name = ($17::text[])[1 + (hashint8(n) & 2147483647) % 20]
"""

# The ticket table's indexes that no constraint owns: the scale seed drops them while it inserts and builds them again
# afterwards from these very definitions, which is much faster than maintaining them row by row.
TICKET_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes i
 WHERE schemaname = 'public' AND tablename = 'ticket'
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
"""


def seed_scale(dsn: str, target: SeedTarget, first: int, last: int, base: datetime.datetime, rebuild: bool) -> None:
    """Tickets REQ-<first>..REQ-<last> of one tenant (see SCALE_SEED), then VACUUM ANALYZE. With `rebuild`, the
    ticket table's own indexes are dropped during the insert and built again after it."""

    async def work(conn: asyncpg.Connection) -> None:
        fields = [target.field_ids[key] for key in SEEDED_FIELDS]
        indexes = await conn.fetch(TICKET_INDEXES) if rebuild else []
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        await conn.execute(
            SCALE_SEED,
            target.tenant_id,
            target.type_id,
            target.type_version,
            *fields,
            base,
            first,
            last,
            SCALE_NOUNS,
            SCALE_PROBLEMS,
            SCALE_PRIORITIES,
            SCALE_STATES,
        )
        await conn.execute(SEQUENCE, target.tenant_id, last)
        if indexes:
            await conn.execute("SET maintenance_work_mem = '512MB'")
            for index in indexes:
                await conn.execute(index["indexdef"])
        await conn.execute("VACUUM ANALYZE ticket")

    run_sql(dsn, work)
