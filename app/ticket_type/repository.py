"""SQL for ticket types and their versions. tenant_id is a mandatory argument of every method."""

from __future__ import annotations

import datetime
import uuid

import msgspec

from app.db.database import Database, select_list
from app.db.errors import UniqueViolation

TICKET_TYPES_CHANGED_CHANNEL = "ticket_types_changed"


class TicketTypeRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    prefix: str
    version: int
    # The TicketTypeDefinition of the current version, as JSON text.
    definition: str
    archived_at: datetime.datetime | None
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str


class GoverningWorkflow(msgspec.Struct, frozen=True):
    """A ticket type whose workflow still governs tickets."""

    prefix: str
    archived: bool
    # The type's Workflow, as JSON text.
    workflow: str


_COLUMNS = select_list(TicketTypeRow, definition="definition::text")


class PrefixTaken(Exception):
    """Another ticket type of the tenant (possibly archived) already uses the prefix."""


class TicketTypeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_all(self, tenant_id: uuid.UUID, include_archived: bool) -> list[TicketTypeRow]:
        return await self._db.fetch_all(
            TicketTypeRow,
            f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND ($2 OR archived_at IS NULL) ORDER BY prefix",
            tenant_id,
            include_archived,
        )

    async def get(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> TicketTypeRow | None:
        return await self._db.fetch_one(
            TicketTypeRow, f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND id = $2", tenant_id, type_id
        )

    async def get_by_prefix(self, tenant_id: uuid.UUID, prefix: str) -> TicketTypeRow | None:
        return await self._db.fetch_one(
            TicketTypeRow, f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND prefix = $2", tenant_id, prefix
        )

    async def lock(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> TicketTypeRow | None:
        """The type, locked until commit (inside a transaction)."""
        return await self._db.fetch_one(
            TicketTypeRow,
            f"SELECT {_COLUMNS} FROM ticket_type WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            tenant_id,
            type_id,
        )

    async def exists(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> bool:
        found: bool = await self._db.fetch_value(
            "SELECT EXISTS (SELECT 1 FROM ticket_type WHERE tenant_id = $1 AND id = $2)", tenant_id, type_id
        )
        return found

    async def states_of_tickets(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> list[str]:
        """Names of the states the type's tickets are in."""
        names: list[str] = await self._db.fetch_column(
            "SELECT s.name FROM ticket_state s WHERE s.tenant_id = $1 AND EXISTS "
            "(SELECT 1 FROM ticket t WHERE t.tenant_id = $1 AND t.type_id = $2 AND t.state_id = s.id) ORDER BY s.name",
            tenant_id,
            type_id,
        )
        return names

    async def governing_workflows(self, tenant_id: uuid.UUID) -> list[GoverningWorkflow]:
        """The tenant's ticket types whose workflow still governs tickets: every active type, and an archived one
        while it has tickets (their status changes follow it)."""
        return await self._db.fetch_all(
            GoverningWorkflow,
            "SELECT prefix, archived_at IS NOT NULL AS archived, (definition -> 'workflow')::text AS workflow "
            "FROM ticket_type tt "
            "WHERE tenant_id = $1 AND jsonb_typeof(definition -> 'workflow') = 'object' "
            "AND (archived_at IS NULL OR EXISTS (SELECT 1 FROM ticket t WHERE t.tenant_id = $1 AND t.type_id = tt.id)) "
            "ORDER BY prefix",
            tenant_id,
        )

    async def version_definitions(self, tenant_id: uuid.UUID, type_id: uuid.UUID) -> list[str]:
        definitions: list[str] = await self._db.fetch_column(
            "SELECT definition::text FROM ticket_type_version WHERE tenant_id = $1 AND type_id = $2 ORDER BY version",
            tenant_id,
            type_id,
        )
        return definitions

    async def insert(
        self, tenant_id: uuid.UUID, type_id: uuid.UUID, prefix: str, definition: str, actor: str
    ) -> TicketTypeRow | None:
        """Insert version 1 (inside a transaction); None if the id already exists (idempotent template seeding).
        Raises PrefixTaken."""
        try:
            row = await self._db.fetch_one(
                TicketTypeRow,
                "INSERT INTO ticket_type (tenant_id, id, prefix, version, definition, created_by, updated_by) "
                "VALUES ($1, $2, $3, 1, $4::jsonb, $5, $5) ON CONFLICT (tenant_id, id) DO NOTHING "
                f"RETURNING {_COLUMNS}",
                tenant_id,
                type_id,
                prefix,
                definition,
                actor,
            )
        except UniqueViolation:
            raise PrefixTaken(prefix) from None
        if row is not None:
            await self._record_version(tenant_id, type_id, 1, definition, actor)
        return row

    async def save_version(
        self, tenant_id: uuid.UUID, type_id: uuid.UUID, version: int, definition: str, actor: str
    ) -> TicketTypeRow:
        """Make `definition` the type's current version (inside a transaction that holds the type's lock)."""
        row = await self._db.fetch_one(
            TicketTypeRow,
            "UPDATE ticket_type SET version = $3, definition = $4::jsonb, updated_at = now(), updated_by = $5 "
            f"WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            tenant_id,
            type_id,
            version,
            definition,
            actor,
        )
        assert row is not None  # the caller holds the row's lock
        await self._record_version(tenant_id, type_id, version, definition, actor)
        return row

    async def archive(self, tenant_id: uuid.UUID, type_id: uuid.UUID, actor: str) -> TicketTypeRow:
        # least(), not coalesce(): an archived type keeps its first archiving time, and Citus refuses a
        # non-immutable function such as now() inside COALESCE or CASE of an UPDATE.
        row = await self._db.fetch_one(
            TicketTypeRow,
            "UPDATE ticket_type SET archived_at = least(archived_at, now()), updated_at = now(), updated_by = $3 "
            f"WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            tenant_id,
            type_id,
            actor,
        )
        assert row is not None  # the caller holds the row's lock
        return row

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's types (its tickets must be gone already); rows removed per table."""
        removed = {
            "ticket_type_version": await self._db.execute(
                "DELETE FROM ticket_type_version WHERE tenant_id = $1", tenant_id
            ),
            "ticket_type": await self._db.execute("DELETE FROM ticket_type WHERE tenant_id = $1", tenant_id),
        }
        # The tenant may come back (a new file with its id): no worker may keep its old types cached.
        await self.notify_changed(tenant_id)
        return removed

    async def notify_changed(self, tenant_id: uuid.UUID) -> None:
        # Delivered at commit, to every worker's type cache (see TicketTypeCache.invalidate).
        await self._db.execute("SELECT pg_notify($1, $2)", TICKET_TYPES_CHANGED_CHANNEL, str(tenant_id))

    async def _record_version(
        self, tenant_id: uuid.UUID, type_id: uuid.UUID, version: int, definition: str, actor: str
    ) -> None:
        await self._db.execute(
            "INSERT INTO ticket_type_version (tenant_id, type_id, version, definition, created_by) "
            "VALUES ($1, $2, $3, $4::jsonb, $5)",
            tenant_id,
            type_id,
            version,
            definition,
            actor,
        )
