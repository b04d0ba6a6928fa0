"""SQL for ticket states. tenant_id is a mandatory argument of every method."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.db.pool import ConnectionPool
from app.ticket_state.dto import StateIn

_COLUMNS = (
    "id, name, state_type, next_state_id, ignore_escalation, default_create, default_follow_up, note, active, "
    "created_by, created_at, updated_by, updated_at"
)


class TicketStateRepository:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as connection, connection.transaction():
            # One state change per tenant at a time: the "exactly one default" rules read, then write.
            yield connection

    async def lock_tenant(self, conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ticket_state:' || $1::uuid::text))", tenant_id)

    async def list_all(self, conn: asyncpg.Connection | ConnectionPool, tenant_id: uuid.UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await conn.fetch(
            f"SELECT {_COLUMNS} FROM ticket_state WHERE tenant_id = $1 ORDER BY created_at, name", tenant_id
        )
        return rows

    async def list_for(self, tenant_id: uuid.UUID) -> list[asyncpg.Record]:
        return await self.list_all(self._pool, tenant_id)

    async def get(self, tenant_id: uuid.UUID, state_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM ticket_state WHERE tenant_id = $1 AND id = $2", tenant_id, state_id
        )

    async def insert(
        self, conn: asyncpg.Connection, tenant_id: uuid.UUID, state: StateIn, actor: str
    ) -> asyncpg.Record:
        row: asyncpg.Record = await conn.fetchrow(
            "INSERT INTO ticket_state (tenant_id, name, state_type, next_state_id, ignore_escalation, default_create, "
            "default_follow_up, note, active, created_by, updated_by) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {_COLUMNS}",
            tenant_id,
            state.name,
            state.state_type,
            state.next_state_id,
            state.ignore_escalation,
            state.default_create,
            state.default_follow_up,
            state.note,
            state.active,
            actor,
        )
        return row

    async def update(
        self, conn: asyncpg.Connection, tenant_id: uuid.UUID, state_id: uuid.UUID, state: StateIn, actor: str
    ) -> asyncpg.Record:
        row: asyncpg.Record = await conn.fetchrow(
            "UPDATE ticket_state SET name = $3, state_type = $4, next_state_id = $5, ignore_escalation = $6, "
            "default_create = $7, default_follow_up = $8, note = $9, active = $10, updated_by = $11, "
            f"updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            tenant_id,
            state_id,
            state.name,
            state.state_type,
            state.next_state_id,
            state.ignore_escalation,
            state.default_create,
            state.default_follow_up,
            state.note,
            state.active,
            actor,
        )
        return row

    async def clear_default(
        self, conn: asyncpg.Connection, tenant_id: uuid.UUID, column: str, except_id: uuid.UUID | None
    ) -> None:
        assert column in ("default_create", "default_follow_up")
        await conn.execute(
            f"UPDATE ticket_state SET {column} = false, updated_at = now() "
            f"WHERE tenant_id = $1 AND {column} AND id IS DISTINCT FROM $2",
            tenant_id,
            except_id,
        )

    async def is_referenced(self, conn: asyncpg.Connection, tenant_id: uuid.UUID, state_id: uuid.UUID) -> bool:
        referenced: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM ticket WHERE tenant_id = $1 AND state_id = $2) "
            "OR EXISTS (SELECT 1 FROM ticket_state WHERE tenant_id = $1 AND next_state_id = $2 AND id <> $2)",
            tenant_id,
            state_id,
        )
        return referenced

    async def workflows(self, conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[asyncpg.Record]:
        """(prefix, workflow as JSON text) of the tenant's ticket types whose workflow still governs tickets: every
        active type, and an archived one while it has tickets (their status changes follow it)."""
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT prefix, archived_at IS NOT NULL AS archived, (definition -> 'workflow')::text AS workflow "
            "FROM ticket_type tt "
            "WHERE tenant_id = $1 AND jsonb_typeof(definition -> 'workflow') = 'object' "
            "AND (archived_at IS NULL OR EXISTS (SELECT 1 FROM ticket t WHERE t.tenant_id = $1 AND t.type_id = tt.id)) "
            "ORDER BY prefix",
            tenant_id,
        )
        return rows

    async def delete(self, conn: asyncpg.Connection, tenant_id: uuid.UUID, state_id: uuid.UUID) -> None:
        await conn.execute("DELETE FROM ticket_state WHERE tenant_id = $1 AND id = $2", tenant_id, state_id)

    async def assign_default_to_stateless_tickets(self, conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
        """Tickets created before their tenant had states start in its default_create state, as if from their
        creation: their events say so too, so their history and as-of reads match what GET shows."""
        for table in ("ticket_event", "ticket"):
            await conn.execute(
                f"UPDATE {table} SET state_id = (SELECT id FROM ticket_state WHERE tenant_id = $1 AND default_create "
                "AND active) WHERE tenant_id = $1 AND state_id IS NULL",
                tenant_id,
            )
