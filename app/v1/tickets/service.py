"""Seeds 000 and 001 translated onto TicketService: the v1 names become the mapped ticket type's field UUIDs and
state names, and each write becomes the v2 compare-and-swap on the ticket's current etag.

v1 clients send no etag, so a write reads the ticket's current etag and swaps on it; when another write got in
between (ETAG_MISMATCH), it reads again and retries, up to MAX_ATTEMPTS times. An update merges only the members
sent, so two v1 clients changing different members both keep their change, and a v1 write racing a v2 write never
overwrites what the other wrote without having seen it. Every rule (values, workflow, guards, history, who sees
what) is TicketService's; nothing here decides anything but the translation."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from app.auth.principal import Principal
from app.errors import InputValidationFailure
from app.idempotency.service import Idempotency, Outcome
from app.ticket.dto import ChangeStatusRequest
from app.ticket.errors import EtagMismatch, TransitionNotAllowed
from app.ticket.repository import TicketRow
from app.ticket.service import TicketService, as_uuid
from app.v1.errors import TICKET_NOT_FOUND, V1Error, validation_error
from app.v1.tenant_mapping import TenantMapping, TicketMapping
from app.v1.tickets.dto import StatusChangeRequest, TicketUpdateRequest, V1Ticket

# Enough for a handful of clients writing one ticket at the same moment; beyond that the client hears 409 and
# retries, rather than this request holding a connection in a loop.
MAX_ATTEMPTS = 8
# Members seed 001 says this endpoint may not change, and where they are changed instead.
_NOT_HERE = {
    "status": "cannot be changed through this endpoint; use PATCH /api/v1/tickets/{id}/status",
    "assignedTo": "cannot be changed through this endpoint",
    "userId": "cannot be changed",
    "id": "cannot be changed",
    "createdAt": "cannot be changed",
    "updatedAt": "cannot be changed; it is set by every change",
}
_data = msgspec.json.Decoder(dict[str, Any])
_stored = msgspec.json.Decoder(V1Ticket)


class V1TicketService:
    def __init__(self, tickets: TicketService, mapping: TenantMapping, keys: Idempotency) -> None:
        self._tickets = tickets
        self._mapping = mapping
        self._keys = keys

    async def change_status(
        self,
        principal: Principal,
        ticket_id: str,
        request: StatusChangeRequest,
        request_id: str,
        idempotency_key: str | None,
    ) -> Outcome[V1Ticket]:
        mapping = await self._mapping.tickets(principal.tenant_id)
        status = _checked_status(mapping, request.status)
        claim = self._keys.claim(principal, idempotency_key, "v1.change_status", ticket_id, status)

        async def write() -> V1Ticket:
            for _ in range(MAX_ATTEMPTS):
                ticket = await self._ticket(principal, mapping, ticket_id)
                change = ChangeStatusRequest(etag=str(ticket.etag), state=status)
                try:
                    await self._tickets.change_status(principal, ticket.object_id, change, request_id)
                except EtagMismatch:
                    continue
                except TransitionNotAllowed as exc:
                    raise _transition_refused(mapping, status, exc) from None
                except InputValidationFailure as exc:
                    raise _translated(mapping, exc) from None
                return await self._v1_ticket(principal, mapping, ticket_id)
            raise _kept_changing()

        return await self._keys.once(principal, claim, write, _stored)

    async def update(
        self,
        principal: Principal,
        ticket_id: str,
        request: TicketUpdateRequest,
        request_id: str,
        idempotency_key: str | None,
    ) -> Outcome[V1Ticket]:
        mapping = await self._mapping.tickets(principal.tenant_id)
        sent = request.sent()
        changes = _changes(mapping, sent)
        claim = self._keys.claim(principal, idempotency_key, "v1.update", ticket_id, sent)

        async def write() -> V1Ticket:
            for _ in range(MAX_ATTEMPTS):
                ticket = await self._ticket(principal, mapping, ticket_id)
                try:
                    await self._tickets.update(principal, ticket.object_id, str(ticket.etag), changes, request_id)
                except EtagMismatch:
                    continue
                except InputValidationFailure as exc:
                    raise _translated(mapping, exc) from None
                return await self._v1_ticket(principal, mapping, ticket_id)
            raise _kept_changing()

        return await self._keys.once(principal, claim, write, _stored)

    async def _ticket(self, principal: Principal, mapping: TicketMapping, ticket_id: str) -> TicketRow:
        """The ticket as the caller may see it; a ticket of another type, or an id that is not a UUID, names no v1
        ticket (404)."""
        internal_id = as_uuid(ticket_id)
        if internal_id is None:
            raise V1Error(404, *TICKET_NOT_FOUND)
        ticket = await self._tickets.visible_by_id(principal, internal_id)
        if ticket.type_id != mapping.ticket_type.id:
            raise V1Error(404, *TICKET_NOT_FOUND)
        return ticket

    async def _v1_ticket(self, principal: Principal, mapping: TicketMapping, ticket_id: str) -> V1Ticket:
        ticket = await self._ticket(principal, mapping, ticket_id)
        label = await self._tickets.state_label(principal.tenant_id, ticket.state_id)
        return to_v1(ticket, mapping, label.name if label is not None else None)


def to_v1(ticket: TicketRow, mapping: TicketMapping, status: str | None) -> V1Ticket:
    data = _data.decode(ticket.data)

    def member(name: str) -> Any:
        field = mapping.members.get(name)
        value = data.get(field.definition.id) if field is not None else None
        # A cleared value ("" or []) reads as no value.
        return value if value not in ("", []) else None

    attachments = member("attachments")
    return V1Ticket(
        id=ticket.id,
        userId=ticket.created_by,
        status=status,
        category=member("category"),
        title=member("title"),
        description=member("description"),
        attachments=attachments if isinstance(attachments, list) else [],
        assignedTo=ticket.assignee,
        notes=member("notes"),
        createdAt=seed_time(ticket.created_at),
        updatedAt=seed_time(ticket.updated_at),
    )


def seed_time(moment: datetime.datetime) -> str:
    """The seeds' timestamps: UTC, to the second, with Z (2024-01-15T10:30:00Z)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _checked_status(mapping: TicketMapping, status: Any) -> str:
    if mapping.statuses is None:
        # No workflow: any state of the tenant, which TicketService checks.
        if isinstance(status, str) and status:
            return status
        raise validation_error({"status": "Invalid status value"})
    if isinstance(status, str) and status in mapping.statuses:
        return status
    raise validation_error({"status": f"Invalid status value. Must be one of: {', '.join(mapping.statuses)}"})


def _changes(mapping: TicketMapping, sent: dict[str, Any]) -> dict[str, Any]:
    """The ticketUpdate of a v1 PUT: each member sent, keyed by its field's UUID; every refusal by member name."""
    details: dict[str, str] = {}
    changes: dict[str, Any] = {}
    for name, value in sent.items():
        field = mapping.members.get(name)
        if name in _NOT_HERE:
            details[name] = _NOT_HERE[name]
        elif field is None:
            details[name] = "this tenant's tickets have no such field"
        else:
            changes[field.definition.id] = value
    if not sent:
        details["body"] = f"at least one of {', '.join(mapping.members)} is required"
    if not details:
        details = _named(mapping, mapping.ticket_type.check_update(changes))
    if details:
        raise validation_error(details)
    return changes


def _named(mapping: TicketMapping, reason: dict[str, str]) -> dict[str, str]:
    """A v2 reason keyed by field UUID, keyed by v1 member names; a refused value of a field with fixed values in
    the seed's words ("Invalid category value")."""
    details: dict[str, str] = {}
    for key, problem in reason.items():
        name = mapping.member_of(key)
        if name is None:
            details["status" if key == "state" else key] = problem
            continue
        enumerated = "enum" in mapping.members[name].definition.schema
        details[name] = f"Invalid {name} value" if enumerated and "cleared" not in problem else problem
    return details


def _translated(mapping: TicketMapping, exc: InputValidationFailure) -> V1Error:
    return validation_error(_named(mapping, exc.reason))


def _transition_refused(mapping: TicketMapping, status: str, exc: TransitionNotAllowed) -> V1Error:
    allowed = [state.name for state in exc.allowed]
    order = mapping.statuses or ()
    allowed.sort(key=lambda name: order.index(name) if name in order else len(order))
    source = f"from {exc.current} " if exc.current is not None else ""
    options = f"Allowed: {', '.join(allowed)}" if allowed else "No status may follow it"
    return validation_error({"status": f"Cannot change status {source}to {status}. {options}"})


def _kept_changing() -> V1Error:
    return V1Error(409, "CONFLICT", "The ticket kept changing under concurrent writes; retry the request")
