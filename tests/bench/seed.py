"""Seeding tickets directly in SQL, and the few reads the benchmark needs from the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

# One ticket per n, numbered like the app's CREATE does it: at least four digits, never truncated (a bare
# lpad(n, 4) would cut 10000 down to '1000').
SEED = """
INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, created_at, created_by, updated_at, updated_by)
SELECT $1, 'REQ-' || lpad(n::text, greatest(4, length(n::text)), '0'), $2, $3,
       jsonb_build_object(
           $4::text, 'Seeded request ' || n,
           $5::text, 'A request seeded by make bench, number ' || n || '.',
           $6::text, (ARRAY['low', 'normal', 'high', 'urgent'])[1 + n % 4],
           $7::text, 'requester' || n || '@bench.example',
           $8::text, '[]'::jsonb,
           $9::text, 0,
           $10::text, 'api'),
       now() - make_interval(secs => $11 - n), 'bench-seed', now() - make_interval(secs => $11 - n), 'bench-seed'
  FROM generate_series(1, $11::int) AS n
"""

SEQUENCE = """
INSERT INTO display_id_sequence (tenant_id, prefix, last_value) VALUES ($1, 'REQ', $2)
ON CONFLICT (tenant_id, prefix) DO UPDATE SET last_value = excluded.last_value
"""

SEEDED_FIELDS = ("title", "description", "priority", "requester_email", "tags", "counter", "source")


@dataclass(frozen=True)
class SeedTarget:
    tenant_id: uuid.UUID
    type_id: uuid.UUID
    type_version: int
    field_ids: dict[str, str]


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
                await conn.execute(SEED, target.tenant_id, target.type_id, target.type_version, *fields, per_tenant)
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
