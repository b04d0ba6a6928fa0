"""SQL for ticket types. tenant_id is a mandatory argument of every method."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.db.pool import ConnectionPool

TICKET_TYPES_CHANGED_CHANNEL = "ticket_types_changed"

_COLUMNS = "id, prefix, version, definition, archived_at, created_at, created_by, updated_at, updated_by"


class PrefixTaken(Exception):
    """Another ticket type of the tenant (possibly archived) already uses the prefix."""


class TicketTypeRepository:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as connection, connection.transaction():
            yield connection

    async def list_all(self, tenant_id: uuid.UUID, include_archived: bool) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND ($2 OR archived_at IS NULL) ORDER BY prefix",
            tenant_id,
            include_archived,
        )
        return rows

    async def get(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            type_id,
        )

    async def get_by_prefix(self, tenant_id: uuid.UUID, prefix: str) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND prefix = $2",
            tenant_id,
            prefix,
        )

    async def exists(self, conn: asyncpg.Connection, tenant_id: uuid.UUID, type_id: uuid.UUID) -> bool:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM ticket_type WHERE tenant_id = $1 AND id = $2)", tenant_id, type_id
        )
        return found

    async def ticket_states(self, conn: asyncpg.Connection, tenant_id: uuid.UUID, type_id: uuid.UUID) -> list[str]:
        """Names of the states the type's tickets are in."""
        rows = await conn.fetch(
            "SELECT s.name FROM ticket_state s WHERE s.tenant_id = $1 AND EXISTS "
            "(SELECT 1 FROM ticket t WHERE t.tenant_id = $1 AND t.type_id = $2 AND t.state_id = s.id) ORDER BY s.name",
            tenant_id,
            type_id,
        )
        return [row["name"] for row in rows]

    async def lock(self, conn: asyncpg.Connection, tenant_id: uuid.UUID, type_id: uuid.UUID) -> asyncpg.Record | None:
        return await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            tenant_id,
            type_id,
        )

    async def version_definitions(
        self, conn: asyncpg.Connection, tenant_id: uuid.UUID, type_id: uuid.UUID
    ) -> list[str]:
        rows = await conn.fetch(
            "SELECT definition FROM ticket_type_version WHERE tenant_id = $1 AND type_id = $2 ORDER BY version",
            tenant_id,
            type_id,
        )
        return [row["definition"] for row in rows]

    async def insert(
        self,
        conn: asyncpg.Connection,
        tenant_id: uuid.UUID,
        type_id: uuid.UUID,
        prefix: str,
        definition: str,
        actor: str,
    ) -> asyncpg.Record | None:
        """Insert version 1; None if the id already exists (idempotent template seeding). Raises PrefixTaken."""
        try:
            row = await conn.fetchrow(
                "INSERT INTO ticket_type (tenant_id, id, prefix, version, definition, created_by, updated_by) "
                "VALUES ($1, $2, $3, 1, $4::jsonb, $5, $5) ON CONFLICT (tenant_id, id) DO NOTHING "
                f"RETURNING {_COLUMNS}",
                tenant_id,
                type_id,
                prefix,
                definition,
                actor,
            )
        except asyncpg.UniqueViolationError:
            raise PrefixTaken(prefix) from None
        if row is not None:
            await self._record_version(conn, tenant_id, type_id, 1, definition, actor)
        return row

    async def save_version(
        self,
        conn: asyncpg.Connection,
        tenant_id: uuid.UUID,
        type_id: uuid.UUID,
        version: int,
        definition: str,
        actor: str,
    ) -> asyncpg.Record:
        row = await conn.fetchrow(
            "UPDATE ticket_type SET version = $3, definition = $4::jsonb, updated_at = now(), updated_by = $5 "
            f"WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            tenant_id,
            type_id,
            version,
            definition,
            actor,
        )
        await self._record_version(conn, tenant_id, type_id, version, definition, actor)
        return row

    async def archive(
        self, conn: asyncpg.Connection, tenant_id: uuid.UUID, type_id: uuid.UUID, actor: str
    ) -> asyncpg.Record:
        return await conn.fetchrow(
            "UPDATE ticket_type SET archived_at = coalesce(archived_at, now()), updated_at = now(), updated_by = $3 "
            f"WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            tenant_id,
            type_id,
            actor,
        )

    async def notify_changed(self, conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
        # Delivered at commit, to every worker's type cache (see TicketTypeCache.invalidate).
        await conn.execute("SELECT pg_notify($1, $2)", TICKET_TYPES_CHANGED_CHANNEL, str(tenant_id))

    async def _record_version(
        self,
        conn: asyncpg.Connection,
        tenant_id: uuid.UUID,
        type_id: uuid.UUID,
        version: int,
        definition: str,
        actor: str,
    ) -> None:
        await conn.execute(
            "INSERT INTO ticket_type_version (tenant_id, type_id, version, definition, created_by) "
            "VALUES ($1, $2, $3, $4::jsonb, $5)",
            tenant_id,
            type_id,
            version,
            definition,
            actor,
        )
