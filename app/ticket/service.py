"""Rules for tickets: values are validated against the ticket type's compiled field schemas before any SQL runs,
display IDs are allocated per tenant and prefix, and updates are an etag compare-and-swap."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
import msgspec

from app.auth.principal import Principal
from app.errors import InputValidationFailure
from app.ticket.dto import CreateTicketRequest, TicketOut, canonical_encoder
from app.ticket.errors import EtagMismatch, IdempotencyKeyReused, TicketNotFound
from app.ticket.repository import TicketRepository
from app.ticket_type.cache import TicketTypeCache

# Used with fullmatch: Python's "$" would also accept a trailing newline.
OBJECT_ID = re.compile(r"([A-Z]{2,5})-([0-9]{4,18})")
MAX_IDEMPOTENCY_KEY_LENGTH = 255
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class CreatedTicket:
    id: uuid.UUID
    object_id: str
    etag: uuid.UUID
    replayed: bool


@dataclass(frozen=True, slots=True)
class TicketQuery:
    page: int
    per_page: int
    type_id: uuid.UUID | None
    field_values: dict[str, Any]
    sort: str
    order: str


class TicketService:
    def __init__(self, repository: TicketRepository, types: TicketTypeCache) -> None:
        self._repository = repository
        self._types = types

    async def create(
        self, principal: Principal, request: CreateTicketRequest, request_id: str, idempotency_key: str | None
    ) -> CreatedTicket:
        ticket_type = await self._types.by_id(principal.tenant_id, request.ticketTypeId)
        if ticket_type is None or ticket_type.archived:
            raise InputValidationFailure(
                "Invalid ticket type",
                {"ticketTypeId": "no active ticket type with this id in the tenant"},
            )
        data, reason = ticket_type.complete_for_create(request.data)
        if reason:
            raise InputValidationFailure("Ticket data failed validation", reason)
        idempotency = None
        if idempotency_key is not None:
            if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not idempotency_key.isprintable():
                raise InputValidationFailure(
                    "Invalid request headers",
                    {"Idempotency-Key": f"1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters"},
                )
            # Scoped to the caller: another client of the tenant reusing a key must not receive this ticket.
            scoped_key = f"{principal.subject}\n{idempotency_key}"
            idempotency = (scoped_key, hashlib.sha256(canonical_encoder.encode(request)).hexdigest())
        row, stored = await self._repository.create(
            principal.tenant_id,
            ticket_type.prefix,
            ticket_type.id,
            ticket_type.version,
            _json.encode(data).decode(),
            principal.subject,
            request_id,
            principal.support_request,
            idempotency,
        )
        if row is not None:
            return CreatedTicket(row["id"], row["object_id"], row["etag"], replayed=False)
        assert stored is not None and idempotency is not None
        if stored["request_hash"] != idempotency[1]:
            raise IdempotencyKeyReused()
        first = msgspec.json.decode(stored["response"])
        return CreatedTicket(uuid.UUID(first["id"]), first["object_id"], uuid.UUID(first["etag"]), replayed=True)

    async def get(self, principal: Principal, object_id: str) -> TicketOut:
        if OBJECT_ID.fullmatch(object_id) is None:
            raise TicketNotFound(object_id)
        row = await self._repository.get(principal.tenant_id, object_id)
        if row is None:
            raise TicketNotFound(object_id)
        return to_out(row)

    async def update(
        self, principal: Principal, object_id: str, etag: str | None, changes: dict[str, Any] | None, request_id: str
    ) -> uuid.UUID:
        """Merge `changes` into the ticket's data if its etag is still `etag`; return the new etag."""
        reason: dict[str, str] = {}
        if not etag:
            reason["etag"] = "required: the ticket's current etag (from GET, create or the previous update)"
        if changes is None:
            reason["ticketUpdate"] = "required: a map of field UUID to new value"
        elif not changes:
            reason["ticketUpdate"] = "must name at least one field"
        if reason:
            raise InputValidationFailure("Invalid request body", reason)
        assert etag is not None and changes is not None
        match = OBJECT_ID.fullmatch(object_id)
        if match is None:
            raise TicketNotFound(object_id)
        # The type comes from the display-ID prefix: values are validated without reading the ticket.
        ticket_type = await self._types.by_prefix(principal.tenant_id, match.group(1))
        if ticket_type is None:
            raise TicketNotFound(object_id)
        reason = ticket_type.check_update(changes)
        if reason:
            raise InputValidationFailure("Ticket update failed validation", reason)
        try:
            expected: uuid.UUID | None = uuid.UUID(etag)
        except ValueError:
            expected = None  # not an etag we ever issued, so it cannot be the current one
        if expected is not None:
            new_etag = await self._repository.compare_and_swap(
                principal.tenant_id,
                object_id,
                expected,
                _json.encode(changes).decode(),
                principal.subject,
                ticket_type.version,
                request_id,
                principal.support_request,
            )
            if new_etag is not None:
                return new_etag
        if await self._repository.exists(principal.tenant_id, object_id):
            raise EtagMismatch()
        raise TicketNotFound(object_id)

    async def page(self, principal: Principal, query: TicketQuery) -> tuple[int, list[TicketOut]]:
        contains = [_json.encode({field_id: value}).decode() for field_id, value in query.field_values.items()]
        total, rows = await self._repository.page(
            principal.tenant_id,
            type_id=query.type_id,
            contains=contains,
            sort=query.sort,
            order=query.order,
            limit=query.per_page,
            offset=(query.page - 1) * query.per_page,
        )
        return total, [to_out(row) for row in rows]


def last_page(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def to_out(row: asyncpg.Record) -> TicketOut:
    return TicketOut(
        etag=str(row["etag"]),
        id=row["id"],
        object_id=row["object_id"],
        ticket_type_id=row["type_id"],
        ticket_type_version=row["type_version"],
        state_id=row["state_id"],
        # The stored JSONB text goes out as is (msgspec.Raw); decoding and re-encoding it would be wasted work.
        data=cast(Any, msgspec.Raw(row["data"])),
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
        lastUpdatedBy=row["updated_by"],
    )
