"""SQL for tickets and their events. tenant_id is a mandatory argument of every method.

Every write and its ticket_event row are one statement: a rejected write (stale etag, unknown ticket) writes
nothing, and history and webhooks can be built on the events alone. Each event records the changed fields (old and
new value) and the ticket's state, type version, pending time and assignee after it, so any earlier version of a
ticket can be rebuilt exactly from its events (AS_OF). Events are numbered per ticket (`sequence`, from the
ticket's `event_sequence`, bumped under the ticket's row lock), so their order does not depend on one node handing
out ids. A deleted ticket keeps its row and its events (`deleted_at` is set): no write reaches it any more, and its
display ID stays taken.

New etags come from the application: Citus, where this SQL must keep running, refuses volatile functions such as
gen_random_uuid() in an UPDATE of a distributed table. Times are now() (the transaction's start, stable, which
Citus accepts), but never earlier than the ticket's last change: a transaction that waited for the row lock, or began
with an Idempotency-Key's claim, must not move updated_at (and its event's time) back behind an earlier event.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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
    # The realm of created_by's token (None for a ticket created before realms were recorded whose creator the
    # directory could not place): with the subject, who created it.
    created_realm: str | None
    updated_at: datetime.datetime
    updated_by: str
    # A subject of the tenant; None while nobody is assigned.
    assignee: str | None


class CreatedTicketRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    object_id: str
    etag: uuid.UUID
    state_id: uuid.UUID | None


class UpdatedTicketRow(msgspec.Struct, frozen=True):
    """What an update changed nothing of, but its response names: the ticket's state."""

    state_id: uuid.UUID | None


class AssignedTicketRow(msgspec.Struct, frozen=True):
    """What an assignment's response names: the ticket's state, unchanged by it."""

    state_id: uuid.UUID | None


class HistoryRow(msgspec.Struct, frozen=True):
    sequence: int
    kind: str
    # Field UUID to {"old", "new"}, as JSON text.
    changes: str
    state_id: uuid.UUID | None
    previous_state_id: uuid.UUID | None
    pending_until: datetime.datetime | None
    previous_pending_until: datetime.datetime | None
    assignee: str | None
    previous_assignee: str | None
    note: str | None
    actor: str
    request_id: str
    support: bool
    etag: uuid.UUID
    created_at: datetime.datetime
    # comment.created: the comment, and whether it is an internal note (then customer-level callers never see it).
    comment_id: uuid.UUID | None
    internal: bool
    # The attachment an attachment.created or attachment.deleted event is about.
    attachment_id: uuid.UUID | None


_TICKET_COLUMNS = select_list(TicketRow, data="data::text")
_GET_ANY = f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE tenant_id = $1 AND object_id = $2"
_GET = f"{_GET_ANY} AND deleted_at IS NULL"
_GET_BY_ID = f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
_NAMES_BY_ID = "SELECT object_id, type_id FROM ticket WHERE tenant_id = $1 AND id = $2"


class TicketNamesRow(msgspec.Struct, frozen=True):
    object_id: str
    type_id: uuid.UUID


class CountedTicketRow(TicketRow, frozen=True):
    """A ticket of a page that counts its matches as it reads them: their number."""

    total: int


_COUNTED_COLUMNS = select_list(CountedTicketRow, prefix="t.", data="t.data::text", total="hits.total")

# The compare-and-swap: lock the row only if its etag is the expected one, merge the sent keys (a shallow
# `||`), give it a new etag, and record each field whose value changed with its old and new value.
COMPARE_AND_SWAP = """
WITH previous AS (
    SELECT id, data FROM ticket
     WHERE tenant_id = $1 AND object_id = $2 AND etag = $3 AND deleted_at IS NULL
       FOR UPDATE
), updated AS (
    UPDATE ticket t
       SET data = t.data || $4::jsonb, etag = $9, updated_at = greatest(now(), t.updated_at), updated_by = $5,
           type_version = $6, event_sequence = t.event_sequence + 1
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
 RETURNING t.id, t.etag, t.state_id, t.pending_until, t.assignee, t.updated_at, t.event_sequence
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, assignee, created_at)
    SELECT $1, updated.id, updated.event_sequence, 'ticket.updated',
           coalesce((SELECT jsonb_object_agg(p.key, jsonb_build_object('old', previous.data -> p.key, 'new', p.value))
                       FROM jsonb_each($4::jsonb) AS p
                      WHERE previous.data -> p.key IS DISTINCT FROM p.value), '{}'::jsonb),
           $5, $7, $8, updated.etag, updated.state_id, $6, updated.pending_until, updated.assignee, updated.updated_at
      FROM updated, previous
)
SELECT state_id FROM updated
"""

# Allocate the next display number of (tenant, prefix) and insert the ticket with its creation event. The
# sequence row stays locked until commit, so concurrent creates get consecutive numbers and no gaps. The ticket
# starts in its type's initial state ($9, a name; NULL for none), else in the tenant's default_create state, and
# unassigned (its creation event's assignee is NULL).
CREATE = """
WITH number AS (
    INSERT INTO display_id_sequence AS s (tenant_id, prefix, last_value) VALUES ($1, $2, 1)
    ON CONFLICT (tenant_id, prefix) DO UPDATE SET last_value = s.last_value + 1
    RETURNING last_value
), created AS (
    INSERT INTO ticket (tenant_id, object_id, type_id, type_version, data, state_id, created_by, created_realm,
                        updated_by, event_sequence, etag)
    SELECT $1, $2 || '-' || lpad(number.last_value::text, greatest(4, length(number.last_value::text)), '0'),
           $3, $4, $5::jsonb,
           coalesce((SELECT id FROM ticket_state WHERE tenant_id = $1 AND lower(name) = lower($9) AND active),
                    (SELECT id FROM ticket_state WHERE tenant_id = $1 AND default_create AND active)),
           $6, $11, $6, 1, $10
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
     WHERE tenant_id = $1 AND object_id = $2 AND etag = $3 AND deleted_at IS NULL
       FOR UPDATE
), updated AS (
    UPDATE ticket t
       SET state_id = $4, pending_until = $5, etag = $10, updated_at = greatest(now(), t.updated_at), updated_by = $6,
           event_sequence = t.event_sequence + 1
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
       AND EXISTS (SELECT 1 FROM ticket_state s WHERE s.tenant_id = $1 AND s.id = $4 AND s.active)
 RETURNING t.id, t.etag, t.type_version, t.assignee, t.updated_at, t.event_sequence
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, assignee, note, created_at)
    SELECT $1, updated.id, updated.event_sequence, 'ticket.status_changed', '{}'::jsonb, $6, $7, $8, updated.etag, $4,
           updated.type_version, $5, updated.assignee, $9, updated.updated_at
      FROM updated
)
SELECT etag FROM updated
"""

# The assignment compare-and-swap: like COMPARE_AND_SWAP, it sets the assignee ($4; NULL unassigns). The event
# records the assignee after it; the one before is the previous event's (see HISTORY).
ASSIGN = """
WITH previous AS (
    SELECT id FROM ticket
     WHERE tenant_id = $1 AND object_id = $2 AND etag = $3 AND deleted_at IS NULL
       FOR UPDATE
), updated AS (
    UPDATE ticket t
       SET assignee = $4, etag = $5, updated_at = greatest(now(), t.updated_at), updated_by = $6,
           event_sequence = t.event_sequence + 1
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
 RETURNING t.id, t.etag, t.state_id, t.type_version, t.pending_until, t.assignee, t.updated_at, t.event_sequence
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, assignee, created_at)
    SELECT $1, id, event_sequence, 'ticket.assigned', '{}'::jsonb, $6, $7, $8, etag, state_id, type_version,
           pending_until, assignee, updated_at
      FROM updated
)
SELECT state_id FROM updated
"""

# Soft deletion: the row stays (its events refer to it, and its display ID stays taken) with deleted_at set, and a
# ticket.deleted event records who deleted it. $3: the etags If-Match accepts (NULL: any).
DELETE = """
WITH previous AS (
    SELECT id FROM ticket
     WHERE tenant_id = $1 AND object_id = $2 AND deleted_at IS NULL AND ($3::uuid[] IS NULL OR etag = ANY($3))
       FOR UPDATE
), deleted AS (
    UPDATE ticket t
       SET deleted_at = now(), etag = $4, updated_at = greatest(now(), t.updated_at), updated_by = $5,
           event_sequence = t.event_sequence + 1
      FROM previous
     WHERE t.tenant_id = $1 AND t.id = previous.id
 RETURNING t.id, t.etag, t.state_id, t.type_version, t.pending_until, t.assignee, t.updated_at, t.event_sequence
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, assignee, created_at)
    SELECT $1, id, event_sequence, 'ticket.deleted', '{}'::jsonb, $5, $6, $7, etag, state_id, type_version,
           pending_until, assignee, updated_at
      FROM deleted
)
SELECT id FROM deleted
"""

# The tenants that have pending-close tickets whose time has come (read only: the sweep then locks per tenant). A
# disabled (offboarded) tenant's tickets stay as they are until it is enabled again or purged.
DUE_TENANTS = """
SELECT DISTINCT t.tenant_id
  FROM ticket t
  JOIN ticket_state s ON s.tenant_id = t.tenant_id AND s.id = t.state_id
  JOIN tenant n ON n.id = t.tenant_id
 WHERE t.pending_until <= now() AND s.state_type = 'pending close' AND s.next_state_id IS NOT NULL
   AND t.deleted_at IS NULL AND NOT n.config @> '{"disabled": true}'
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
       AND s.next_state_id IS NOT NULL AND t.deleted_at IS NULL
     ORDER BY t.pending_until
     LIMIT $2
       FOR UPDATE OF t SKIP LOCKED
), moved AS (
    UPDATE ticket t
       SET state_id = due.next_state_id, pending_until = NULL, etag = md5($3::text || t.id::text)::uuid,
           updated_at = greatest(now(), t.updated_at), updated_by = $4, event_sequence = t.event_sequence + 1
      FROM due
     WHERE t.tenant_id = $1 AND t.id = due.id
 RETURNING t.id, t.etag, t.state_id, t.type_version, t.assignee, t.updated_at, t.event_sequence
)
INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag, state_id,
                          type_version, pending_until, assignee, note, created_at)
SELECT $1, id, event_sequence, 'ticket.status_changed', '{}'::jsonb, $4, $5, false, etag, state_id, type_version,
       NULL, assignee, $6, updated_at
  FROM moved
"""

# A ticket's events, oldest first, each with the state, pending time and assignee before it; internal events (those
# of internal notes) only when $5.
HISTORY = """
SELECT sequence, kind, changes::text AS changes, state_id, previous_state_id, pending_until,
       previous_pending_until, assignee, previous_assignee, note, actor, request_id, support, etag, created_at,
       comment_id, internal, attachment_id
  FROM (SELECT sequence, kind, changes, state_id, lag(state_id) OVER w AS previous_state_id, pending_until,
               lag(pending_until) OVER w AS previous_pending_until, assignee,
               lag(assignee) OVER w AS previous_assignee, note, actor, request_id, support, etag, created_at,
               comment_id, internal, attachment_id
          FROM ticket_event
         WHERE tenant_id = $1 AND ticket_id = $2
        WINDOW w AS (ORDER BY sequence)) AS events
 WHERE $5 OR NOT internal
 ORDER BY sequence
 LIMIT $3 OFFSET $4
"""

# The ticket ($2, its id) as it was after its last event at or before a time ($3) or with an etag ($4): each field
# holds the new value of the last event that changed it (fields are merged, never removed), everything else is the
# last event's. The data is built as jsonb, so its text is byte for byte what a GET showed. After its deletion there
# is no ticket to show.
AS_OF = """
WITH ticket_row AS (
    SELECT id, object_id, type_id, created_realm FROM ticket WHERE tenant_id = $1 AND id = $2
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
       ticket_row.created_realm,
       last_event.created_at AS updated_at, last_event.actor AS updated_by, last_event.assignee
  FROM last_event, first_event, ticket_row
 WHERE last_event.kind <> 'ticket.deleted'
"""

# --- The list ---------------------------------------------------------------------------------------------------

RangeKind = Literal["number", "date", "date-time"]
RangeOperator = Literal[">=", ">", "<=", "<"]
SortKey = Literal["created_at", "updated_at", "rank", "field"]
FieldSortKind = Literal["enum", "number", "text"]


@dataclass(frozen=True, slots=True)
class FieldRange:
    field_id: str
    operator: RangeOperator
    kind: RangeKind
    # The bound: a number's JSON text, a date (YYYY-MM-DD), or a date-time in UTC (ISO 8601 with +00:00).
    bound: str


@dataclass(frozen=True, slots=True)
class TicketFilter:
    """Which tickets a list shows; every member that is set narrows it (deleted tickets are never listed)."""

    type_id: uuid.UUID | None = None
    state_ids: tuple[uuid.UUID, ...] | None = None
    assignee: str | None = None
    unassigned: bool = False
    created_by: str | None = None
    # With created_by, for a customer-level caller: its own tickets are those its subject created in its realm.
    created_realm: str | None = None
    created_from: datetime.datetime | None = None  # inclusive
    created_until: datetime.datetime | None = None  # exclusive
    updated_from: datetime.datetime | None = None
    updated_until: datetime.datetime | None = None
    # JSON documents the ticket's data must contain (one field each: equality).
    contains: tuple[str, ...] = ()
    ranges: tuple[FieldRange, ...] = ()
    # websearch_to_tsquery syntax over the `search` column.
    text: str | None = None


@dataclass(frozen=True, slots=True)
class TicketOrder:
    key: SortKey
    descending: bool
    field_id: str | None = None
    field_kind: FieldSortKind | None = None
    # An enum field's values (JSON text each) in the enum's order.
    enum_values: tuple[str, ...] = ()


_DIRECTIONS = {False: "ASC", True: "DESC"}
_SORT_COLUMNS = {"created_at": "created_at", "updated_at": "updated_at"}
_RANGE_OPERATORS: dict[str, RangeOperator] = {">=": ">=", ">": ">", "<=": "<=", "<": "<"}
# A date-time value as jsonpath's .datetime() reads it: PostgreSQL 15 does not take RFC 3339's "Z" (nor a lower-case
# "t" or "z"), so those are rewritten first. A value .datetime() cannot read matches no range (silent = true).
_DATE_TIME_RANGE = (
    "jsonb_path_exists_tz(jsonb_build_array(regexp_replace(regexp_replace(data ->> {field}, '[Zz]$', '+00:00'), "
    "'^([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})t', '\\1T')), "
    "'$[*] ? (@.datetime() {operator} $bound.datetime())', jsonb_build_object('bound', {bound}::text), true)"
)


class TicketRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's tickets, their events first, with its display-ID sequences; rows removed per
        table."""
        execute = self._db.execute
        return {
            "ticket_event": await execute("DELETE FROM ticket_event WHERE tenant_id = $1", tenant_id),
            "ticket": await execute("DELETE FROM ticket WHERE tenant_id = $1", tenant_id),
            "display_id_sequence": await execute("DELETE FROM display_id_sequence WHERE tenant_id = $1", tenant_id),
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

    async def assign(
        self,
        tenant_id: uuid.UUID,
        object_id: str,
        expected_etag: uuid.UUID,
        new_etag: uuid.UUID,
        assignee: str | None,
        actor: str,
        request_id: str,
        support: bool,
    ) -> AssignedTicketRow | None:
        """The assigned ticket's state; None when no ticket of this tenant has that object_id and etag."""
        return await self._db.fetch_one(
            AssignedTicketRow,
            ASSIGN,
            tenant_id,
            object_id,
            expected_etag,
            assignee,
            new_etag,
            actor,
            request_id,
            support,
        )

    async def delete(
        self,
        tenant_id: uuid.UUID,
        object_id: str,
        accepted_etags: list[uuid.UUID] | None,
        new_etag: uuid.UUID,
        actor: str,
        request_id: str,
        support: bool,
    ) -> uuid.UUID | None:
        """The deleted ticket's id; None when no ticket of this tenant has that object_id (deleted ones excluded)
        and, unless `accepted_etags` is None, one of those etags."""
        deleted: uuid.UUID | None = await self._db.fetch_value(
            DELETE, tenant_id, object_id, accepted_etags, new_etag, actor, request_id, support
        )
        return deleted

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

    async def count_events(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, *, internal: bool) -> int:
        """How many events the ticket has; internal ones (see HISTORY) counted only with `internal`."""
        count: int = await self._db.fetch_value(
            "SELECT count(*) FROM ticket_event WHERE tenant_id = $1 AND ticket_id = $2 AND ($3 OR NOT internal)",
            tenant_id,
            ticket_id,
            internal,
        )
        return count

    async def history(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, limit: int, offset: int, *, internal: bool
    ) -> list[HistoryRow]:
        return await self._db.fetch_all(HistoryRow, HISTORY, tenant_id, ticket_id, limit, offset, internal)

    async def as_of(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, at: datetime.datetime | None, etag: uuid.UUID | None
    ) -> TicketRow | None:
        return await self._db.fetch_one(TicketRow, AS_OF, tenant_id, ticket_id, at, etag)

    async def exists(self, tenant_id: uuid.UUID, object_id: str) -> bool:
        """Whether the tenant has this ticket (and it is not deleted)."""
        found: bool = await self._db.fetch_value(
            "SELECT EXISTS (SELECT 1 FROM ticket WHERE tenant_id = $1 AND object_id = $2 AND deleted_at IS NULL)",
            tenant_id,
            object_id,
        )
        return found

    async def get(self, tenant_id: uuid.UUID, object_id: str, *, include_deleted: bool = False) -> TicketRow | None:
        return await self._db.fetch_one(
            TicketRow,
            _GET_ANY if include_deleted else _GET,
            tenant_id,
            object_id,
        )

    async def get_by_id(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> TicketRow | None:
        """A live ticket by its internal id (the v1 surface names tickets by it)."""
        return await self._db.fetch_one(TicketRow, _GET_BY_ID, tenant_id, ticket_id)

    async def names_by_id(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> TicketNamesRow | None:
        """A ticket's display ID and type by its internal id, deleted or not."""
        return await self._db.fetch_one(TicketNamesRow, _NAMES_BY_ID, tenant_id, ticket_id)

    async def create(
        self,
        tenant_id: uuid.UUID,
        prefix: str,
        type_id: uuid.UUID,
        type_version: int,
        data_json: str,
        initial_state: str | None,
        actor: str,
        actor_realm: str,
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
            actor_realm,
        )
        assert row is not None  # the statement always inserts
        return row

    async def page(
        self, tenant_id: uuid.UUID, where: TicketFilter, order: TicketOrder, limit: int, offset: int
    ) -> tuple[int, list[TicketRow]]:
        """One page of the tenant's tickets and the exact number of tickets the filter matches."""
        arguments: list[Any] = [tenant_id]

        def argument(value: Any) -> str:
            arguments.append(value)
            return f"${len(arguments)}"

        matching = " AND ".join(_conditions(where, argument))
        count_arguments = [*arguments]  # the ranked page adds its own
        direction = _DIRECTIONS[order.descending]
        if order.key == "rank":
            assert where.text is not None
            ranked = await self._db.fetch_all(
                CountedTicketRow,
                _ranked_page(where.text, matching, order.descending, limit, offset, argument),
                *arguments,
            )
            if ranked or offset == 0:
                return (ranked[0].total if ranked else 0), [*ranked]
            # A page past the last: the matches are counted on their own.
        total: int = await self._db.fetch_value(f"SELECT count(*) FROM ticket WHERE {matching}", *count_arguments)
        if offset >= total or order.key == "rank":
            return total, []
        if order.key == "field" and order.field_kind == "enum":
            rows = await self._db.fetch_all(TicketRow, _enum_page(order, matching, limit, offset, argument), *arguments)
            return total, rows
        if order.key == "field":
            assert order.field_id is not None and order.field_kind is not None
            value = _field_sort_key(order.field_kind, argument(order.field_id))
            keys = f"{value} {direction} NULLS LAST, created_at {direction}"
        else:
            keys = f"{_SORT_COLUMNS[order.key]} {direction}"
        rows = await self._db.fetch_all(
            TicketRow,
            f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE {matching} "
            f"ORDER BY {keys}, id {direction} LIMIT {int(limit)} OFFSET {int(offset)}",
            *arguments,
        )
        return total, rows


def _conditions(where: TicketFilter, argument: Callable[[Any], str]) -> list[str]:
    """The WHERE conditions of a list query: each value is a bind parameter (`argument` numbers it)."""
    conditions = ["tenant_id = $1", "deleted_at IS NULL"]
    if where.type_id is not None:
        conditions.append(f"type_id = {argument(where.type_id)}")
    if where.state_ids is not None:
        conditions.append(f"state_id = ANY({argument(list(where.state_ids))}::uuid[])")
    if where.unassigned:
        conditions.append("assignee IS NULL")
    elif where.assignee is not None:
        conditions.append(f"assignee = {argument(where.assignee)}")
    if where.created_by is not None:
        conditions.append(f"created_by = {argument(where.created_by)}")
    if where.created_realm is not None:
        conditions.append(f"created_realm = {argument(where.created_realm)}")
    for column, operator, moment in (
        ("created_at", ">=", where.created_from),
        ("created_at", "<", where.created_until),
        ("updated_at", ">=", where.updated_from),
        ("updated_at", "<", where.updated_until),
    ):
        if moment is not None:
            conditions.append(f"{column} {operator} {argument(moment)}")
    for document in where.contains:
        conditions.append(f"data @> {argument(document)}::jsonb")
    for bound in where.ranges:
        conditions.append(_range_condition(bound, argument))
    if where.text is not None:
        conditions.append(f"search @@ websearch_to_tsquery('simple', {argument(where.text)})")
    return conditions


def _range_condition(bound: FieldRange, argument: Callable[[Any], str]) -> str:
    """A field compared with a bound, safely for whatever the stored value is: a value of another kind (a field whose
    schema changed, a cleared field) never matches, and nothing is cast that could fail."""
    operator = _RANGE_OPERATORS[bound.operator]
    field = argument(bound.field_id)
    if bound.kind == "number":
        # jsonb compares numbers as numbers; the type check keeps strings, arrays and objects out (jsonb orders
        # every value of one type before or after every value of another).
        return (
            f"(jsonb_typeof(data -> {field}) = 'number' AND data -> {field} {operator} {argument(bound.bound)}::jsonb)"
        )
    if bound.kind == "date":
        # Dates in ISO form compare as text, byte by byte.
        value = f"data ->> {field}"
        date = argument(bound.bound)
        return f"({value} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' AND {value} COLLATE \"C\" {operator} {date})"
    return _DATE_TIME_RANGE.format(field=field, operator=operator, bound=argument(bound.bound))


def _field_sort_key(kind: FieldSortKind, field: str) -> str:
    """What a field sort compares: numbers as numbers, text as text; any other value (of another type, or a cleared
    field) counts as none, and tickets without a value come last either way."""
    if kind == "number":
        return f"(CASE WHEN jsonb_typeof(data -> {field}) = 'number' THEN data -> {field} END)"
    return f"(CASE WHEN jsonb_typeof(data -> {field}) = 'string' THEN nullif(data ->> {field}, '') END)"


def _ranked_page(
    text: str, matching: str, descending: bool, limit: int, offset: int, argument: Callable[[Any], str]
) -> str:
    """A page of a search's matches by relevance, with their number: ranking reads every match anyway, so the count
    comes from the same pass (a window over the matches' ids and ranks only) instead of a second scan; the page's
    tickets are then read by their keys."""
    direction = _DIRECTIONS[descending]
    rank = f"ts_rank(search, websearch_to_tsquery('simple', {argument(text)}))"
    return f"""
        SELECT {_COUNTED_COLUMNS} FROM (
               SELECT id, {rank} AS rank, created_at, count(*) OVER () AS total FROM ticket
                WHERE {matching}
                ORDER BY rank {direction}, created_at {direction}, id {direction}
                LIMIT {int(limit)} OFFSET {int(offset)}) AS hits
          JOIN ticket t ON t.tenant_id = $1 AND t.id = hits.id
         ORDER BY hits.rank {direction}, hits.created_at {direction}, hits.id {direction}
    """


def _enum_page(order: TicketOrder, matching: str, limit: int, offset: int, argument: Callable[[Any], str]) -> str:
    """A page sorted by an enum field, in the enum's order: the tickets holding each value in turn (in creation
    order within one), then those holding none of them. Each value's tickets are read from the creation-order index
    only as far as the page needs, and the values after the page are never read, so the page costs about as much as
    a page of the plain list. (A value few tickets hold, before the page, is read to its end.)"""
    assert order.field_id is not None
    direction = _DIRECTIONS[order.descending]
    field = argument(order.field_id)
    values = list(order.enum_values)
    # Descending reverses the values; the tickets holding none of them (NULL: the last group) come last either way.
    groups = argument([*(reversed(values) if order.descending else values), None])
    enum = argument(values)
    return f"""
        SELECT t.* FROM unnest({groups}::jsonb[]) WITH ORDINALITY AS g(value, position)
         CROSS JOIN LATERAL (
               SELECT {_TICKET_COLUMNS} FROM ticket
                WHERE {matching}
                  AND (data -> {field} = g.value
                       OR (g.value IS NULL AND NOT coalesce(data -> {field} = ANY({enum}::jsonb[]), false)))
                ORDER BY created_at {direction}, id {direction}
                LIMIT {int(offset) + int(limit)}) AS t
         ORDER BY g.position, t.created_at {direction}, t.id {direction}
         LIMIT {int(limit)} OFFSET {int(offset)}
    """
