"""SQL for ticket states. tenant_id is a mandatory argument of every method."""

from __future__ import annotations

import datetime
import uuid
from typing import Literal

import msgspec

from app.db.database import Database, select_list
from app.ticket_state.dto import StateIn, StateType

DefaultFlag = Literal["default_create", "default_follow_up"]
TICKET_STATES_CHANGED_CHANNEL = "ticket_states_changed"


class TicketStateRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    state_type: StateType
    next_state_id: uuid.UUID | None
    ignore_escalation: bool
    default_create: bool
    default_follow_up: bool
    note: str | None
    active: bool
    created_by: str
    created_at: datetime.datetime
    updated_by: str
    updated_at: datetime.datetime
    # Seed 003's integer id: stable and unique in the tenant, never reused (the v1 surface names states by it).
    serial: int


class StateLabelRow(msgspec.Struct, frozen=True):
    """What a ticket shows of its state next to the state's id."""

    id: uuid.UUID
    name: str
    state_type: StateType


_COLUMNS = select_list(TicketStateRow)


def _values(state: StateIn) -> tuple[object, ...]:
    """A state's writable members, in the column order of INSERT and UPDATE below."""
    return (
        state.name,
        state.state_type,
        state.next_state_id,
        state.ignore_escalation,
        state.default_create,
        state.default_follow_up,
        state.note,
        state.active,
    )


class TicketStateRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's states (its tickets must be gone already). One statement, so the states'
        references to each other (next_state_id) are checked only once all of them are gone."""
        return {
            "ticket_state": await self._db.execute("DELETE FROM ticket_state WHERE tenant_id = $1", tenant_id),
            "ticket_state_serial": await self._db.execute(
                "DELETE FROM ticket_state_serial WHERE tenant_id = $1", tenant_id
            ),
        }

    async def lock_tenant(self, tenant_id: uuid.UUID) -> None:
        """Held until commit: one change to a tenant's states at a time, because the "exactly one default" rules
        read the states and then write them."""
        await self._db.execute("SELECT pg_advisory_xact_lock(hashtext('ticket_state:' || $1::uuid::text))", tenant_id)

    async def list_all(self, tenant_id: uuid.UUID) -> list[TicketStateRow]:
        return await self._db.fetch_all(
            TicketStateRow,
            f"SELECT {_COLUMNS} FROM ticket_state WHERE tenant_id = $1 ORDER BY created_at, name",
            tenant_id,
        )

    async def labels(self, tenant_id: uuid.UUID) -> list[StateLabelRow]:
        return await self._db.fetch_all(
            StateLabelRow, "SELECT id, name, state_type FROM ticket_state WHERE tenant_id = $1", tenant_id
        )

    async def notify_changed(self, tenant_id: uuid.UUID) -> None:
        # Delivered at commit, to every worker's state cache (see TicketStateCache.invalidate).
        await self._db.execute("SELECT pg_notify($1, $2)", TICKET_STATES_CHANGED_CHANNEL, str(tenant_id))

    async def get(self, tenant_id: uuid.UUID, state_id: uuid.UUID) -> TicketStateRow | None:
        return await self._db.fetch_one(
            TicketStateRow, f"SELECT {_COLUMNS} FROM ticket_state WHERE tenant_id = $1 AND id = $2", tenant_id, state_id
        )

    async def insert(self, tenant_id: uuid.UUID, state: StateIn, actor: str) -> TicketStateRow:
        # The tenant's next integer id, counted apart so that a deleted state's number is never given out again.
        row = await self._db.fetch_one(
            TicketStateRow,
            "WITH numbered AS (INSERT INTO ticket_state_serial (tenant_id, last) VALUES ($1, 1) "
            "ON CONFLICT (tenant_id) DO UPDATE SET last = ticket_state_serial.last + 1 RETURNING last) "
            "INSERT INTO ticket_state (tenant_id, name, state_type, next_state_id, ignore_escalation, default_create, "
            "default_follow_up, note, active, created_by, updated_by, serial) "
            f"SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, last FROM numbered RETURNING {_COLUMNS}",
            tenant_id,
            *_values(state),
            actor,
        )
        assert row is not None  # INSERT ... RETURNING returns the row it inserted
        return row

    async def update(self, tenant_id: uuid.UUID, state_id: uuid.UUID, state: StateIn, actor: str) -> TicketStateRow:
        row = await self._db.fetch_one(
            TicketStateRow,
            "UPDATE ticket_state SET name = $3, state_type = $4, next_state_id = $5, ignore_escalation = $6, "
            "default_create = $7, default_follow_up = $8, note = $9, active = $10, updated_by = $11, "
            f"updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}",
            tenant_id,
            state_id,
            *_values(state),
            actor,
        )
        assert row is not None  # the caller holds the tenant's state lock and has just read the state
        return row

    async def set_next_state(self, tenant_id: uuid.UUID, state_id: uuid.UUID, next_state_id: uuid.UUID) -> None:
        await self._db.execute(
            "UPDATE ticket_state SET next_state_id = $3 WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            state_id,
            next_state_id,
        )

    async def clear_default(self, tenant_id: uuid.UUID, flag: DefaultFlag, except_id: uuid.UUID | None) -> None:
        column = {"default_create": "default_create", "default_follow_up": "default_follow_up"}[flag]
        await self._db.execute(
            f"UPDATE ticket_state SET {column} = false, updated_at = now() "
            f"WHERE tenant_id = $1 AND {column} AND id IS DISTINCT FROM $2",
            tenant_id,
            except_id,
        )

    async def is_referenced(self, tenant_id: uuid.UUID, state_id: uuid.UUID) -> bool:
        """Whether a ticket is in the state or another state names it as its next state."""
        referenced: bool = await self._db.fetch_value(
            "SELECT EXISTS (SELECT 1 FROM ticket WHERE tenant_id = $1 AND state_id = $2) "
            "OR EXISTS (SELECT 1 FROM ticket_state WHERE tenant_id = $1 AND next_state_id = $2 AND id <> $2)",
            tenant_id,
            state_id,
        )
        return referenced

    async def delete(self, tenant_id: uuid.UUID, state_id: uuid.UUID) -> None:
        await self._db.execute("DELETE FROM ticket_state WHERE tenant_id = $1 AND id = $2", tenant_id, state_id)

    async def assign_default_to_stateless_tickets(self, tenant_id: uuid.UUID) -> None:
        """Tickets created before their tenant had states start in its default_create state, as if from their
        creation: their events say so too, so their history and as-of reads match what GET shows."""
        for table in ("ticket_event", "ticket"):
            await self._db.execute(
                f"UPDATE {table} SET state_id = (SELECT id FROM ticket_state WHERE tenant_id = $1 AND default_create "
                "AND active) WHERE tenant_id = $1 AND state_id IS NULL",
                tenant_id,
            )
