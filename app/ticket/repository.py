"""SQL for tickets and their events. tenant_id is a mandatory argument of every method.

Every write and its ticket_event row are one statement: a rejected write (stale etag, unknown ticket) writes
nothing, and history and webhooks can be built on the events alone. Each event records the changed fields (old and
new value) and the ticket's state, type version and pending time after it, so any earlier version of a ticket can
be rebuilt exactly from its events (AS_OF).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import asyncpg

from app.db.pool import ConnectionPool

_TICKET_COLUMNS = (
    "id, object_id, type_id, type_version, state_id, pending_until, data::text AS data, etag, created_at, created_by, "
    "updated_at, updated_by"
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
 RETURNING t.id, t.etag, t.state_id, t.pending_until, t.updated_at
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, kind, changes, actor, request_id, support, etag, state_id,
                              type_version, pending_until, created_at)
    SELECT $1, updated.id, 'ticket.updated',
           coalesce((SELECT jsonb_object_agg(p.key, jsonb_build_object('old', previous.data -> p.key, 'new', p.value))
                       FROM jsonb_each($4::jsonb) AS p
                      WHERE previous.data -> p.key IS DISTINCT FROM p.value), '{}'::jsonb),
           $5, $7, $8, updated.etag, updated.state_id, $6, updated.pending_until, updated.updated_at
      FROM updated, previous
)
SELECT etag FROM updated
"""

# Allocate the next display number of (tenant, prefix) and insert the ticket with its creation event. The
# sequence row stays locked until commit, so concurrent creates get consecutive numbers and no gaps. The ticket
# starts in its type's initial state ($9, a name; NULL for none), else in the tenant's default_create state.
CREATE = """
WITH number AS (
    INSERT INTO display_id_sequence AS s (tenant_id, prefix, last_value) VALUES ($1, $2, 1)
    ON CONFLICT (tenant_id, prefix) DO UPDATE SET last_value = s.last_value + 1
    RETURNING last_value
), created AS (
    INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, state_id, created_by, updated_by)
    SELECT $1, $2 || '-' || lpad(number.last_value::text, greatest(4, length(number.last_value::text)), '0'),
           $3, $4, $5::jsonb,
           coalesce((SELECT id FROM ticket_state WHERE tenant_id = $1 AND lower(name) = lower($9) AND active),
                    (SELECT id FROM ticket_state WHERE tenant_id = $1 AND default_create AND active)),
           $6, $6
      FROM number
 RETURNING id, object_id, etag, data, state_id, created_at
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, kind, changes, actor, request_id, support, etag, state_id,
                              type_version, created_at)
    SELECT $1, created.id, 'ticket.created',
           coalesce((SELECT jsonb_object_agg(d.key, jsonb_build_object('old', NULL, 'new', d.value))
                       FROM jsonb_each(created.data) AS d), '{}'::jsonb),
           $6, $7, $8, created.etag, created.state_id, $4, created.created_at
      FROM created
)
SELECT id, object_id, etag FROM created
"""

# The status compare-and-swap: like COMPARE_AND_SWAP, and only into a state that is (still) active.
CHANGE_STATUS = """
WITH previous AS (
    SELECT id FROM ticket
     WHERE tenant_id = $1 AND object_id = $2 AND etag = $3
       FOR UPDATE
), updated AS (
    UPDATE ticket t
       SET state_id = $4, pending_until = $5, etag = gen_random_uuid(), updated_at = now(), updated_by = $6
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
       AND EXISTS (SELECT 1 FROM ticket_state s WHERE s.tenant_id = $1 AND s.id = $4 AND s.active)
 RETURNING t.id, t.etag, t.type_version, t.updated_at
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, kind, changes, actor, request_id, support, etag, state_id,
                              type_version, pending_until, note, created_at)
    SELECT $1, updated.id, 'ticket.status_changed', '{}'::jsonb, $6, $7, $8, updated.etag, $4,
           updated.type_version, $5, $9, updated.updated_at
      FROM updated
)
SELECT etag FROM updated
"""

# Move tickets whose pending-close time has come to their state's next state. SKIP LOCKED lets several workers
# sweep at once without waiting on each other, and a ticket another sweep (or a client) changed meanwhile is
# re-checked against its new version, so each ticket moves exactly once. clock_timestamp(), not now(): a client's
# write may have committed after this statement started, and a ticket's history must stay in time order.
CLOSE_DUE = """
WITH due AS (
    SELECT t.tenant_id, t.id, s.next_state_id
      FROM ticket t
      JOIN ticket_state s ON s.tenant_id = t.tenant_id AND s.id = t.state_id
     WHERE t.pending_until <= now() AND s.state_type = 'pending close' AND s.next_state_id IS NOT NULL
     ORDER BY t.pending_until
     LIMIT $1
       FOR UPDATE OF t SKIP LOCKED
), moved AS (
    UPDATE ticket t
       SET state_id = due.next_state_id, pending_until = NULL, etag = gen_random_uuid(),
           updated_at = clock_timestamp(), updated_by = $2
      FROM due
     WHERE t.tenant_id = due.tenant_id AND t.id = due.id
 RETURNING t.tenant_id, t.id, t.etag, t.state_id, t.type_version, t.updated_at
)
INSERT INTO ticket_event (tenant_id, ticket_id, kind, changes, actor, request_id, support, etag, state_id,
                          type_version, pending_until, note, created_at)
SELECT tenant_id, id, 'ticket.status_changed', '{}'::jsonb, $2, $3, false, etag, state_id, type_version, NULL,
       $4, updated_at
  FROM moved
"""

# A ticket's events, oldest first, each with the state and pending time before it.
HISTORY = """
SELECT sequence, kind, changes::text AS changes, state_id, previous_state_id, pending_until,
       previous_pending_until, note, actor, request_id, support, etag, created_at
  FROM (SELECT row_number() OVER w AS sequence, kind, changes, state_id,
               lag(state_id) OVER w AS previous_state_id, pending_until,
               lag(pending_until) OVER w AS previous_pending_until, note, actor, request_id, support, etag, created_at
          FROM ticket_event
         WHERE tenant_id = $1 AND ticket_id = $2
        WINDOW w AS (ORDER BY id)) AS events
 ORDER BY sequence
 LIMIT $3 OFFSET $4
"""

# The ticket as it was after its last event at or before a time ($3) or with an etag ($4): each field holds the
# new value of the last event that changed it (fields are merged, never removed), everything else is the last
# event's. The data is built as jsonb, so its text is byte for byte what a GET showed.
AS_OF = """
WITH ticket_row AS (
    SELECT id, object_id, type_id FROM ticket WHERE tenant_id = $1 AND object_id = $2
), events AS (
    SELECT e.* FROM ticket_event e, ticket_row WHERE e.tenant_id = $1 AND e.ticket_id = ticket_row.id
), cut AS (
    SELECT max(id) AS id FROM events
     WHERE ($3::timestamptz IS NULL OR created_at <= $3) AND ($4::uuid IS NULL OR etag = $4)
), first_event AS (
    SELECT created_at, actor FROM events ORDER BY id LIMIT 1
), last_event AS (
    SELECT events.* FROM events, cut WHERE events.id = cut.id
), fields AS (
    SELECT DISTINCT ON (c.key) c.key, c.value -> 'new' AS value
      FROM events e, cut, jsonb_each(e.changes) AS c
     WHERE e.id <= cut.id
     ORDER BY c.key, e.id DESC
)
SELECT ticket_row.id, ticket_row.object_id, ticket_row.type_id, last_event.type_version, last_event.state_id,
       last_event.pending_until,
       (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM fields)::text AS data,
       last_event.etag, first_event.created_at, first_event.actor AS created_by,
       last_event.created_at AS updated_at, last_event.actor AS updated_by
  FROM last_event, first_event, ticket_row
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

    async def change_status(
        self,
        tenant_id: uuid.UUID,
        object_id: str,
        expected_etag: uuid.UUID,
        state_id: uuid.UUID,
        pending_until: datetime.datetime | None,
        actor: str,
        request_id: str,
        support: bool,
        note: str | None,
    ) -> uuid.UUID | None:
        """The new etag, or None when the ticket's etag is no longer `expected_etag` (or the state went inactive)."""
        new_etag: uuid.UUID | None = await self._pool.fetchval(
            CHANGE_STATUS,
            tenant_id,
            object_id,
            expected_etag,
            state_id,
            pending_until,
            actor,
            request_id,
            support,
            note,
        )
        return new_etag

    async def close_due(self, batch: int, actor: str, request_id: str, note: str) -> int:
        """Move up to `batch` tickets whose pending-close time has come, in every tenant; returns how many."""
        status = await self._pool.execute(CLOSE_DUE, batch, actor, request_id, note)
        return int(status.rsplit(" ", 1)[-1])

    async def history(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, limit: int, offset: int
    ) -> tuple[int, list[asyncpg.Record]]:
        async with self._pool.acquire() as conn:
            total: int = await conn.fetchval(
                "SELECT count(*) FROM ticket_event WHERE tenant_id = $1 AND ticket_id = $2", tenant_id, ticket_id
            )
            rows = await conn.fetch(HISTORY, tenant_id, ticket_id, limit, offset)
        return total, rows

    async def as_of(
        self, tenant_id: uuid.UUID, object_id: str, at: datetime.datetime | None, etag: uuid.UUID | None
    ) -> asyncpg.Record | None:
        return await self._pool.fetchrow(AS_OF, tenant_id, object_id, at, etag)

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
        initial_state: str | None,
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
                CREATE, tenant_id, prefix, type_id, type_version, data_json, actor, request_id, support, initial_state
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
