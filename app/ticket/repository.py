"""SQL for tickets and their events. tenant_id is a mandatory argument of every method.

Every write and its ticket_event row are one statement: a rejected write (stale etag, unknown ticket) writes
nothing, and history and webhooks can be built on the events alone.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from app.db.pool import ConnectionPool

_TICKET_COLUMNS = (
    "id, object_id, type_id, type_version, state_id, data::text AS data, etag, created_at, created_by, updated_at, "
    "updated_by"
)

# The compare-and-swap: lock the row only if its etag is the expected one, merge the sent keys (a shallow
# `||`), give it a new etag, and record each field whose value changed with its old and new value.
COMPARE_AND_SWAP = """
WITH previous AS (
    SELECT id, data FROM ticket
     WHERE tenant_id = $1 AND object_id = $2 AND etag = $3
       FOR UPDATE
), updated AS (
    UPDATE ticket t
       SET data = t.data || $4::jsonb, etag = gen_random_uuid(), updated_at = now(), updated_by = $5,
           type_version = $6
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
 RETURNING t.id, t.etag
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, kind, changes, actor, request_id, support, etag)
    SELECT $1, updated.id, 'ticket.updated',
           coalesce((SELECT jsonb_object_agg(p.key, jsonb_build_object('old', previous.data -> p.key, 'new', p.value))
                       FROM jsonb_each($4::jsonb) AS p
                      WHERE previous.data -> p.key IS DISTINCT FROM p.value), '{}'::jsonb),
           $5, $7, $8, updated.etag
      FROM updated, previous
)
SELECT etag FROM updated
"""

# Allocate the next display number of (tenant, prefix) and insert the ticket with its creation event. The
# sequence row stays locked until commit, so concurrent creates get consecutive numbers and no gaps.
CREATE = """
WITH number AS (
    INSERT INTO display_id_sequence AS s (tenant_id, prefix, last_value) VALUES ($1, $2, 1)
    ON CONFLICT (tenant_id, prefix) DO UPDATE SET last_value = s.last_value + 1
    RETURNING last_value
), created AS (
    INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, state_id, created_by, updated_by)
    SELECT $1, $2 || '-' || lpad(number.last_value::text, greatest(4, length(number.last_value::text)), '0'),
           $3, $4, $5::jsonb,
           (SELECT id FROM ticket_state WHERE tenant_id = $1 AND default_create AND active),
           $6, $6
      FROM number
 RETURNING id, object_id, etag, data
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, kind, changes, actor, request_id, support, etag)
    SELECT $1, created.id, 'ticket.created',
           coalesce((SELECT jsonb_object_agg(d.key, jsonb_build_object('old', NULL, 'new', d.value))
                       FROM jsonb_each(created.data) AS d), '{}'::jsonb),
           $6, $7, $8, created.etag
      FROM created
)
SELECT id, object_id, etag FROM created
"""

_SORT_COLUMNS = {"created_at": "created_at", "updated_at": "updated_at"}
_ORDERS = {"asc": "ASC", "desc": "DESC"}


class TicketRepository:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    async def compare_and_swap(
        self,
        tenant_id: uuid.UUID,
        object_id: str,
        expected_etag: uuid.UUID,
        changes_json: str,
        actor: str,
        type_version: int,
        request_id: str,
        support: bool,
    ) -> uuid.UUID | None:
        """The new etag, or None when no ticket of this tenant has that object_id and etag."""
        new_etag: uuid.UUID | None = await self._pool.fetchval(
            COMPARE_AND_SWAP,
            tenant_id,
            object_id,
            expected_etag,
            changes_json,
            actor,
            type_version,
            request_id,
            support,
        )
        return new_etag

    async def exists(self, tenant_id: uuid.UUID, object_id: str) -> bool:
        found: bool = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM ticket WHERE tenant_id = $1 AND object_id = $2)", tenant_id, object_id
        )
        return found

    async def get(self, tenant_id: uuid.UUID, object_id: str) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE tenant_id = $1 AND object_id = $2", tenant_id, object_id
        )

    async def create(
        self,
        tenant_id: uuid.UUID,
        prefix: str,
        type_id: uuid.UUID,
        type_version: int,
        data_json: str,
        actor: str,
        request_id: str,
        support: bool,
        idempotency: tuple[str, str] | None,
    ) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
        """(created row, None), or (None, stored idempotency row: request_hash and response {id, object_id, etag})
        when the key was used before."""
        async with self._pool.acquire() as conn, conn.transaction():
            if idempotency is not None:
                key, request_hash = idempotency
                # Waits for a concurrent request with the same key to commit, then sees its row.
                claimed = await conn.fetchval(
                    "INSERT INTO idempotency_key (tenant_id, key, request_hash) VALUES ($1, $2, $3) "
                    "ON CONFLICT (tenant_id, key) DO NOTHING RETURNING true",
                    tenant_id,
                    key,
                    request_hash,
                )
                if not claimed:
                    stored = await conn.fetchrow(
                        "SELECT request_hash, response::text AS response FROM idempotency_key "
                        "WHERE tenant_id = $1 AND key = $2",
                        tenant_id,
                        key,
                    )
                    return None, stored
            row = await conn.fetchrow(
                CREATE, tenant_id, prefix, type_id, type_version, data_json, actor, request_id, support
            )
            if idempotency is not None:
                # In the same transaction: a replay can never find the key claimed but without its ticket.
                await conn.execute(
                    "UPDATE idempotency_key SET response = jsonb_build_object('id', $3::uuid, 'object_id', $4::text, "
                    "'etag', $5::uuid) WHERE tenant_id = $1 AND key = $2",
                    tenant_id,
                    idempotency[0],
                    row["id"],
                    row["object_id"],
                    row["etag"],
                )
            return row, None

    async def page(
        self,
        tenant_id: uuid.UUID,
        *,
        type_id: uuid.UUID | None,
        contains: list[str],
        sort: str,
        order: str,
        limit: int,
        offset: int,
    ) -> tuple[int, list[asyncpg.Record]]:
        conditions = ["tenant_id = $1"]
        arguments: list[Any] = [tenant_id]
        if type_id is not None:
            arguments.append(type_id)
            conditions.append(f"type_id = ${len(arguments)}")
        for document in contains:
            arguments.append(document)
            conditions.append(f"data @> ${len(arguments)}::jsonb")
        where = " AND ".join(conditions)
        direction = _ORDERS[order]
        column = _SORT_COLUMNS[sort]
        async with self._pool.acquire() as conn:
            total: int = await conn.fetchval(f"SELECT count(*) FROM ticket WHERE {where}", *arguments)
            rows = await conn.fetch(
                f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE {where} "
                f"ORDER BY {column} {direction}, id {direction} LIMIT {int(limit)} OFFSET {int(offset)}",
                *arguments,
            )
        return total, rows
