"""SQL for tickets and their events. tenant_id is a mandatory argument of every method.

Every write and its ticket_event row are one statement: a rejected write (stale etag, unknown ticket) writes
nothing, and history and webhooks can be built on the events alone. Each event records the changed fields (old and
new value) and the ticket's state, type version and pending time after it, so any earlier version of a ticket can
be rebuilt exactly from its events (AS_OF). Events are numbered per ticket (`sequence`, from the ticket's
`event_sequence`, bumped under the ticket's row lock), so their order does not depend on one node handing out ids.

New etags come from the application: Citus, where this SQL must keep running, refuses volatile functions such as
gen_random_uuid() in an UPDATE of a distributed table.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec

from app.db.database import Database, select_list


class TicketRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    object_id: str
    type_id: uuid.UUID
    type_version: int
    state_id: uuid.UUID | None
    pending_until: datetime.datetime | None
    # The stored JSONB document as text: served as is, never decoded and re-encoded on a read.
    data: str
    etag: uuid.UUID
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str


class CreatedTicketRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    object_id: str
    etag: uuid.UUID
    state_id: uuid.UUID | None


class UpdatedTicketRow(msgspec.Struct, frozen=True):
    """What an update changed nothing of, but its response names: the ticket's state."""

    state_id: uuid.UUID | None


class IdempotencyRow(msgspec.Struct, frozen=True):
    request_hash: str
    # What the first request's write returned, as JSON text (a create: {"id", "object_id", "etag"}; an update or a
    # status change: {"etag"}).
    response: str


class HistoryRow(msgspec.Struct, frozen=True):
    sequence: int
    kind: str
    # Field UUID to {"old", "new"}, as JSON text.
    changes: str
    state_id: uuid.UUID | None
    previous_state_id: uuid.UUID | None
    pending_until: datetime.datetime | None
    previous_pending_until: datetime.datetime | None
    note: str | None
    actor: str
    request_id: str
    support: bool
    etag: uuid.UUID
    created_at: datetime.datetime
    # The attachment an attachment.created or attachment.deleted event is about.
    attachment_id: uuid.UUID | None


_TICKET_COLUMNS = select_list(TicketRow, data="data::text")

# The compare-and-swap: lock the row only if its etag is the expected one, merge the sent keys (a shallow
# `||`), give it a new etag, and record each field whose value changed with its old and new value.
COMPARE_AND_SWAP = """
WITH previous AS (
    SELECT id, data FROM ticket
     WHERE tenant_id = $1 AND object_id = $2 AND etag = $3
       FOR UPDATE
), updated AS (
    UPDATE ticket t
       SET data = t.data || $4::jsonb, etag = $9, updated_at = now(), updated_by = $5, type_version = $6,
           event_sequence = t.event_sequence + 1
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
 RETURNING t.id, t.etag, t.state_id, t.pending_until, t.updated_at, t.event_sequence
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, created_at)
    SELECT $1, updated.id, updated.event_sequence, 'ticket.updated',
           coalesce((SELECT jsonb_object_agg(p.key, jsonb_build_object('old', previous.data -> p.key, 'new', p.value))
                       FROM jsonb_each($4::jsonb) AS p
                      WHERE previous.data -> p.key IS DISTINCT FROM p.value), '{}'::jsonb),
           $5, $7, $8, updated.etag, updated.state_id, $6, updated.pending_until, updated.updated_at
      FROM updated, previous
)
SELECT state_id FROM updated
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
    INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, state_id, created_by, updated_by,
                        event_sequence, etag)
    SELECT $1, $2 || '-' || lpad(number.last_value::text, greatest(4, length(number.last_value::text)), '0'),
           $3, $4, $5::jsonb,
           coalesce((SELECT id FROM ticket_state WHERE tenant_id = $1 AND lower(name) = lower($9) AND active),
                    (SELECT id FROM ticket_state WHERE tenant_id = $1 AND default_create AND active)),
           $6, $6, 1, $10
      FROM number
 RETURNING id, object_id, etag, data, state_id, created_at
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, created_at)
    SELECT $1, created.id, 1, 'ticket.created',
           coalesce((SELECT jsonb_object_agg(d.key, jsonb_build_object('old', NULL, 'new', d.value))
                       FROM jsonb_each(created.data) AS d), '{}'::jsonb),
           $6, $7, $8, created.etag, created.state_id, $4, created.created_at
      FROM created
)
SELECT id, object_id, etag, state_id FROM created
"""

# The status compare-and-swap: like COMPARE_AND_SWAP, and only into a state that is (still) active.
CHANGE_STATUS = """
WITH previous AS (
    SELECT id FROM ticket
     WHERE tenant_id = $1 AND object_id = $2 AND etag = $3
       FOR UPDATE
), updated AS (
    UPDATE ticket t
       SET state_id = $4, pending_until = $5, etag = $10, updated_at = now(), updated_by = $6,
           event_sequence = t.event_sequence + 1
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
       AND EXISTS (SELECT 1 FROM ticket_state s WHERE s.tenant_id = $1 AND s.id = $4 AND s.active)
 RETURNING t.id, t.etag, t.type_version, t.updated_at, t.event_sequence
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, note, created_at)
    SELECT $1, updated.id, updated.event_sequence, 'ticket.status_changed', '{}'::jsonb, $6, $7, $8, updated.etag, $4,
           updated.type_version, $5, $9, updated.updated_at
      FROM updated
)
SELECT etag FROM updated
"""

# The tenants that have pending-close tickets whose time has come (read only: the sweep then locks per tenant). A
# disabled (offboarded) tenant's tickets stay as they are until it is enabled again or purged.
DUE_TENANTS = """
SELECT DISTINCT t.tenant_id
  FROM ticket t
  JOIN ticket_state s ON s.tenant_id = t.tenant_id AND s.id = t.state_id
  JOIN tenant n ON n.id = t.tenant_id
 WHERE t.pending_until <= now() AND s.state_type = 'pending close' AND s.next_state_id IS NOT NULL
   AND NOT n.config @> '{"disabled": true}'
"""

# Move one tenant's tickets whose pending-close time has come to their state's next state. SKIP LOCKED lets several
# workers sweep at once without waiting on each other, and a ticket another sweep (or a client) changed meanwhile is
# re-checked against its new version, so each ticket moves exactly once. Each moved ticket's etag is derived from
# the sweep's random batch id ($3, from the application) and the ticket's id. The move's time is never earlier than
# the ticket's last change, so a client's write that committed after this statement began is not after the move in
# time; it may be at the same instant, and then the event sequence orders the two (an asOf at that instant shows
# the moved ticket).
CLOSE_DUE = """
WITH due AS (
    SELECT t.id, s.next_state_id
      FROM ticket t
      JOIN ticket_state s ON s.tenant_id = t.tenant_id AND s.id = t.state_id
     WHERE t.tenant_id = $1 AND t.pending_until <= now() AND s.state_type = 'pending close'
       AND s.next_state_id IS NOT NULL
     ORDER BY t.pending_until
     LIMIT $2
       FOR UPDATE OF t SKIP LOCKED
), moved AS (
    UPDATE ticket t
       SET state_id = due.next_state_id, pending_until = NULL, etag = md5($3::text || t.id::text)::uuid,
           updated_at = greatest(now(), t.updated_at), updated_by = $4, event_sequence = t.event_sequence + 1
      FROM due
     WHERE t.tenant_id = $1 AND t.id = due.id
 RETURNING t.id, t.etag, t.state_id, t.type_version, t.updated_at, t.event_sequence
)
INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag, state_id,
                          type_version, pending_until, note, created_at)
SELECT $1, id, event_sequence, 'ticket.status_changed', '{}'::jsonb, $4, $5, false, etag, state_id, type_version,
       NULL, $6, updated_at
  FROM moved
"""

# A ticket's events, oldest first, each with the state and pending time before it.
HISTORY = """
SELECT sequence, kind, changes::text AS changes, state_id, previous_state_id, pending_until,
       previous_pending_until, note, actor, request_id, support, etag, created_at, attachment_id
  FROM (SELECT sequence, kind, changes, state_id, lag(state_id) OVER w AS previous_state_id, pending_until,
               lag(pending_until) OVER w AS previous_pending_until, note, actor, request_id, support, etag, created_at,
               attachment_id
          FROM ticket_event
         WHERE tenant_id = $1 AND ticket_id = $2
        WINDOW w AS (ORDER BY sequence)) AS events
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
    SELECT max(sequence) AS sequence FROM events
     WHERE ($3::timestamptz IS NULL OR created_at <= $3) AND ($4::uuid IS NULL OR etag = $4)
), first_event AS (
    SELECT created_at, actor FROM events ORDER BY sequence LIMIT 1
), last_event AS (
    SELECT events.* FROM events, cut WHERE events.sequence = cut.sequence
), fields AS (
    SELECT DISTINCT ON (c.key) c.key, c.value -> 'new' AS value
      FROM events e, cut, jsonb_each(e.changes) AS c
     WHERE e.sequence <= cut.sequence
     ORDER BY c.key, e.sequence DESC
)
SELECT ticket_row.id, ticket_row.object_id, ticket_row.type_id, last_event.type_version, last_event.state_id,
       last_event.pending_until,
       (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM fields)::text AS data,
       last_event.etag, first_event.created_at, first_event.actor AS created_by,
       last_event.created_at AS updated_at, last_event.actor AS updated_by
  FROM last_event, first_event, ticket_row
"""

# One tenant's expired Idempotency-Keys: a range of the (tenant_id, created_at) index, so the sweep reads only
# the keys it deletes.
DELETE_EXPIRED_IDEMPOTENCY_KEYS = "DELETE FROM idempotency_key WHERE tenant_id = $1 AND created_at < $2"

_SORT_COLUMNS = {"created_at": "created_at", "updated_at": "updated_at"}
_ORDERS = {"asc": "ASC", "desc": "DESC"}


class TicketRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's tickets, their events first, with its display-ID sequences and Idempotency-Keys;
        rows removed per table."""
        execute = self._db.execute
        return {
            "ticket_event": await execute("DELETE FROM ticket_event WHERE tenant_id = $1", tenant_id),
            "ticket": await execute("DELETE FROM ticket WHERE tenant_id = $1", tenant_id),
            "display_id_sequence": await execute("DELETE FROM display_id_sequence WHERE tenant_id = $1", tenant_id),
            "idempotency_key": await execute("DELETE FROM idempotency_key WHERE tenant_id = $1", tenant_id),
        }

    async def compare_and_swap(
        self,
        tenant_id: uuid.UUID,
        object_id: str,
        expected_etag: uuid.UUID,
        new_etag: uuid.UUID,
        changes_json: str,
        actor: str,
        type_version: int,
        request_id: str,
        support: bool,
    ) -> UpdatedTicketRow | None:
        """The changed ticket's state; None when no ticket of this tenant has that object_id and etag."""
        return await self._db.fetch_one(
            UpdatedTicketRow,
            COMPARE_AND_SWAP,
            tenant_id,
            object_id,
            expected_etag,
            changes_json,
            actor,
            type_version,
            request_id,
            support,
            new_etag,
        )

    async def change_status(
        self,
        tenant_id: uuid.UUID,
        object_id: str,
        expected_etag: uuid.UUID,
        new_etag: uuid.UUID,
        state_id: uuid.UUID,
        pending_until: datetime.datetime | None,
        actor: str,
        request_id: str,
        support: bool,
        note: str | None,
    ) -> bool:
        """Whether the state was changed: False when the ticket's etag is no longer `expected_etag` (or the state
        went inactive)."""
        changed = await self._db.fetch_value(
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
            new_etag,
        )
        return changed is not None

    async def tenants_with_due_tickets(self) -> list[uuid.UUID]:
        tenants: list[uuid.UUID] = await self._db.fetch_column(DUE_TENANTS)
        return tenants

    async def close_due(
        self, tenant_id: uuid.UUID, batch: int, batch_id: uuid.UUID, actor: str, request_id: str, note: str
    ) -> int:
        """Move up to `batch` of the tenant's tickets whose pending-close time has come; returns how many."""
        return await self._db.execute(CLOSE_DUE, tenant_id, batch, str(batch_id), actor, request_id, note)

    async def count_events(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> int:
        count: int = await self._db.fetch_value(
            "SELECT count(*) FROM ticket_event WHERE tenant_id = $1 AND ticket_id = $2", tenant_id, ticket_id
        )
        return count

    async def history(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, limit: int, offset: int) -> list[HistoryRow]:
        return await self._db.fetch_all(HistoryRow, HISTORY, tenant_id, ticket_id, limit, offset)

    async def as_of(
        self, tenant_id: uuid.UUID, object_id: str, at: datetime.datetime | None, etag: uuid.UUID | None
    ) -> TicketRow | None:
        return await self._db.fetch_one(TicketRow, AS_OF, tenant_id, object_id, at, etag)

    async def exists(self, tenant_id: uuid.UUID, object_id: str) -> bool:
        found: bool = await self._db.fetch_value(
            "SELECT EXISTS (SELECT 1 FROM ticket WHERE tenant_id = $1 AND object_id = $2)", tenant_id, object_id
        )
        return found

    async def get(self, tenant_id: uuid.UUID, object_id: str) -> TicketRow | None:
        return await self._db.fetch_one(
            TicketRow,
            f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE tenant_id = $1 AND object_id = $2 AND deleted_at IS NULL",
            tenant_id,
            object_id,
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
        etag: uuid.UUID,
    ) -> CreatedTicketRow:
        row = await self._db.fetch_one(
            CreatedTicketRow,
            CREATE,
            tenant_id,
            prefix,
            type_id,
            type_version,
            data_json,
            actor,
            request_id,
            support,
            initial_state,
            etag,
        )
        assert row is not None  # the statement always inserts
        return row

    async def claim_idempotency_key(
        self, tenant_id: uuid.UUID, scope_digest: bytes, request_hash: str, expired_before: datetime.datetime
    ) -> bool:
        """Whether the key was free, or expired (created before `expired_before`), and is now this request's. A
        concurrent request with the same key makes this wait until that request's transaction ends, and then see
        its row."""
        claimed = await self._db.fetch_value(
            "INSERT INTO idempotency_key AS k (tenant_id, scope_digest, request_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT (tenant_id, scope_digest) DO UPDATE SET request_hash = excluded.request_hash, "
            "response = NULL, created_at = now() WHERE k.created_at < $4 RETURNING true",
            tenant_id,
            scope_digest,
            request_hash,
            expired_before,
        )
        return claimed is not None

    async def idempotent_response(self, tenant_id: uuid.UUID, scope_digest: bytes) -> IdempotencyRow | None:
        return await self._db.fetch_one(
            IdempotencyRow,
            "SELECT request_hash, response::text FROM idempotency_key WHERE tenant_id = $1 AND scope_digest = $2",
            tenant_id,
            scope_digest,
        )

    async def store_idempotent_response(self, tenant_id: uuid.UUID, scope_digest: bytes, response_json: str) -> None:
        await self._db.execute(
            "UPDATE idempotency_key SET response = $3::jsonb WHERE tenant_id = $1 AND scope_digest = $2",
            tenant_id,
            scope_digest,
            response_json,
        )

    async def all_tenants(self) -> list[uuid.UUID]:
        """Every tenant's id. The Idempotency-Key sweep asks each tenant in turn rather than asking the keys which
        tenants have expired ones: that question has no index (it would read every key of every tenant), and the
        one that would answer it, correlated with the tenant table, is not one Citus runs."""
        tenants: list[uuid.UUID] = await self._db.fetch_column("SELECT id FROM tenant")
        return tenants

    async def delete_expired_idempotency_keys(self, tenant_id: uuid.UUID, expired_before: datetime.datetime) -> int:
        return await self._db.execute(DELETE_EXPIRED_IDEMPOTENCY_KEYS, tenant_id, expired_before)

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
    ) -> tuple[int, list[TicketRow]]:
        conditions = ["tenant_id = $1", "deleted_at IS NULL"]
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
        total: int = await self._db.fetch_value(f"SELECT count(*) FROM ticket WHERE {where}", *arguments)
        rows = await self._db.fetch_all(
            TicketRow,
            f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE {where} "
            f"ORDER BY {column} {direction}, id {direction} LIMIT {int(limit)} OFFSET {int(offset)}",
            *arguments,
        )
        return total, rows
