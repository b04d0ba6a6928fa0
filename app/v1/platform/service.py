"""Seed 004's tickets, comments and users translated onto the services the v2 API uses.

Seed 004's names become the mapped ticket type's field UUIDs (title, description, priority, tags; custom_fields are
the type's other fields by key), its priority and status values become the type's priority values and the tenant's
state names (the tenant file's [v1.platform]), and its ticket ids are the tickets' internal UUIDs. Every rule
(values, workflow, who sees what, history, webhooks) stays with the v2 services; this layer only translates.

A PATCH may change the status, the priority and the assignee at once: v2 makes each its own compare-and-swap, so the
three are chained on the etag each returns inside one transaction. Either all of them commit or none does, and a
write that another got ahead of (ETAG_MISMATCH) is redone from a fresh read, up to MAX_ATTEMPTS times, as seeds
000/001's writes are.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from msgspec import UNSET

from app.attachment.dto import AttachmentOut
from app.attachment.service import AttachmentService
from app.auth.principal import Principal
from app.comment.dto import CommentOut, CreateCommentRequest
from app.comment.service import CommentService
from app.db.database import Database
from app.errors import InputValidationFailure
from app.idempotency.service import Idempotency, Outcome
from app.ticket.dto import AssignTicketRequest, ChangeStatusRequest, CreateTicketRequest
from app.ticket.errors import EtagMismatch, TransitionNotAllowed
from app.ticket.listing import TicketQuery
from app.ticket.repository import TicketRow
from app.ticket.service import TicketService, as_uuid
from app.ticket_state.cache import TicketStateCache
from app.ticket_state.repository import StateLabelRow
from app.user.dto import Role, UserOut
from app.user.service import UserService
from app.v1.errors import PLATFORM_TICKET_NOT_FOUND, VALIDATION_FAILED_422, V1Error, invalid_input
from app.v1.platform.dto import (
    PRIORITIES,
    STATUSES,
    USER_STATUSES,
    Person,
    PlatformAttachment,
    PlatformComment,
    PlatformCreateTicketRequest,
    PlatformTicket,
    PlatformTicketDetail,
    PlatformUpdateTicketRequest,
    PlatformUser,
)
from app.v1.tenant_mapping import PlatformMapping, TenantMapping
from app.v1.tickets.service import seed_time

# As seeds 000/001's writes: enough for a handful of clients writing one ticket at once; beyond it, 409.
MAX_ATTEMPTS = 8
# How long a ticket set to a status standing for a pending state waits (seed 004 sends no time): resolved, by
# default the pending close state, closes on its own after a week unless it is reopened.
PENDING_FOR = datetime.timedelta(days=7)
PENDING_STATE_TYPES = ("pending reminder", "pending close")
# Seed 004's sort names; priority sorts in the type's order of its priority values.
SORTS = ("created_at", "updated_at", "priority")
ORDERS = ("asc", "desc")
_PRIORITY_PROBLEM = f"Priority must be one of: {', '.join(PRIORITIES)}"
_STATUS_PROBLEM = f"Status must be one of: {', '.join(STATUSES)}"
_data = msgspec.json.Decoder(dict[str, Any])
_stored_ticket = msgspec.json.Decoder(PlatformTicket)
_stored_comment = msgspec.json.Decoder(PlatformComment)


@dataclass(frozen=True, slots=True)
class TicketListQuery:
    """Seed 004's list parameters, as sent."""

    page: int
    per_page: int
    status: str | None = None
    priority: str | None = None
    assigned_to: str | None = None
    created_by: str | None = None
    q: str | None = None
    sort: str | None = None
    order: str = "desc"


class PlatformService:
    def __init__(
        self,
        db: Database,
        tickets: TicketService,
        comments: CommentService,
        attachments: AttachmentService,
        users: UserService,
        states: TicketStateCache,
        mapping: TenantMapping,
        keys: Idempotency,
    ) -> None:
        self._db = db
        self._tickets = tickets
        self._comments = comments
        self._attachments = attachments
        self._users = users
        self._states = states
        self._mapping = mapping
        self._keys = keys

    # --- tickets ---------------------------------------------------------------------------------------------------

    async def page(self, principal: Principal, query: TicketListQuery) -> tuple[int, list[PlatformTicket]]:
        mapping = await self._mapping.platform(principal.tenant_id)
        if mapping is None:
            return 0, []
        details: dict[str, str] = {}
        fields: list[tuple[str, str]] = []
        if query.priority is not None:
            priority_id = mapping.field_id("priority")
            if query.priority not in mapping.priorities or priority_id is None:
                details["priority"] = _PRIORITY_PROBLEM
            else:
                fields.append((f"data.{priority_id}", mapping.priorities[query.priority]))
        if query.status is not None and query.status not in mapping.statuses:
            details["status"] = _STATUS_PROBLEM
        sort = query.sort
        if sort is not None and sort not in SORTS:
            details["sort"] = f"Sort must be one of: {', '.join(SORTS)}"
        elif sort == "priority":
            priority_id = mapping.field_id("priority")
            sort = f"data.{priority_id}" if priority_id is not None else None
        if query.order not in ORDERS:
            details["order"] = f"Order must be one of: {', '.join(ORDERS)}"
        if details:
            raise invalid_input(details)
        states: tuple[str, ...] = ()
        if query.status is not None:
            states = tuple(
                [name for name in mapping.statuses[query.status] if await self._states.find(principal.tenant_id, name)]
            )
            if not states:
                # The status stands for no state this tenant has: no ticket can show it.
                return 0, []
        v2_query = TicketQuery(
            page=query.page,
            per_page=query.per_page,
            type_id=mapping.ticket_type.id,
            states=states,
            assignee=query.assigned_to,
            created_by=query.created_by,
            fields=tuple(fields),
            q=query.q,
            sort=sort,
            order="asc" if query.order == "asc" else "desc",
        )
        try:
            total, rows = await self._tickets.page(principal, v2_query)
        except InputValidationFailure as exc:
            raise invalid_input(_listing_problems(exc.reason)) from None
        tickets = [
            _Ticket(
                row.id,
                # A page's data is the stored JSONB text, passed along as msgspec.Raw (see to_out).
                _data.decode(cast(bytes, row.data)),
                row.state_name,
                row.created_at,
                row.updated_at,
                row.created_by,
                row.assignee,
            )
            for row in rows
        ]
        return total, await self._platform_tickets(principal, mapping, tickets)

    async def get(self, principal: Principal, ticket_id: str) -> PlatformTicketDetail:
        mapping = await self._platform(principal)
        row = await self._ticket(principal, mapping, ticket_id)
        (ticket,) = await self._platform_tickets(principal, mapping, [await self._row_ticket(principal, row)])
        comments = await self._comments.of_ticket(principal, row)
        files = await self._attachments.of_ticket(principal, row)
        return PlatformTicketDetail(
            **msgspec.structs.asdict(ticket),
            comments=await self._platform_comments(principal, comments),
            attachments=[_attachment(file) for file in files],
        )

    async def create(
        self, principal: Principal, request: PlatformCreateTicketRequest, request_id: str, idempotency_key: str | None
    ) -> Outcome[PlatformTicket]:
        """v2's create, Idempotency-Key included (its files are stored before, not inside, the key's transaction);
        the answer is the ticket as it is once created (a replay: as it is now)."""
        mapping = await self._mapping.platform(principal.tenant_id)
        if mapping is None:
            raise V1Error(
                404, "not_found", "This tenant has no ticket type for /api/v1/tickets (the tenant file's [v1.platform])"
            )
        data = _create_data(mapping, request)
        v2_request = CreateTicketRequest(
            ticketTypeId=mapping.ticket_type.id, data=data, attachments=request.attachments or UNSET
        )
        try:
            created, replayed = await self._tickets.create(principal, v2_request, request_id, idempotency_key)
        except InputValidationFailure as exc:
            raise _refused(mapping, exc) from None
        return await self._read(principal, mapping, str(created.id)), replayed

    async def update(
        self,
        principal: Principal,
        ticket_id: str,
        request: PlatformUpdateTicketRequest,
        request_id: str,
        idempotency_key: str | None,
    ) -> Outcome[PlatformTicket]:
        mapping = await self._platform(principal)
        sent = request.sent()
        priority_change = _priority_change(mapping, sent)
        if "status" in sent and sent["status"] not in mapping.statuses:
            raise invalid_input({"status": _STATUS_PROBLEM})
        if not sent:
            raise invalid_input({"body": "at least one of status, priority, assigned_to is required"})
        claim = self._keys.claim(principal, idempotency_key, "v1.platform.update", ticket_id, sent)

        async def write() -> PlatformTicket:
            for _ in range(MAX_ATTEMPTS):
                try:
                    async with self._db.transaction():
                        await self._apply(principal, mapping, ticket_id, sent, priority_change, request_id)
                except EtagMismatch:
                    continue
                return await self._read(principal, mapping, ticket_id)
            raise V1Error(409, "conflict", "The ticket kept changing under concurrent writes; retry the request")

        return await self._keys.once(principal, claim, write, _stored_ticket)

    async def _apply(
        self,
        principal: Principal,
        mapping: PlatformMapping,
        ticket_id: str,
        sent: dict[str, Any],
        priority_change: dict[str, Any],
        request_id: str,
    ) -> None:
        """The PATCH's changes, each a compare-and-swap on the etag the one before returned (one transaction)."""
        ticket = await self._ticket(principal, mapping, ticket_id)
        etag = str(ticket.etag)
        object_id = ticket.object_id
        if priority_change:
            try:
                written, _ = await self._tickets.update(principal, object_id, etag, priority_change, request_id)
            except InputValidationFailure as exc:
                raise _refused(mapping, exc) from None
            etag = str(written.etag)
        status = sent.get("status")
        if status is not None:
            label = await self._tickets.state_label(principal.tenant_id, ticket.state_id)
            # A ticket already showing the status stays in its state (in_progress stands for two of them).
            if mapping.status(label.name if label is not None else None) != status:
                state = await self._settable_state(principal, mapping, status)
                # A pending state needs the time its wait ends: resolved (pending close) closes on its own a week on.
                until = _now() + PENDING_FOR if state.state_type in PENDING_STATE_TYPES else None
                change = ChangeStatusRequest(etag=etag, state=state.name, pendingUntil=until)
                try:
                    changed, _ = await self._tickets.change_status(principal, object_id, change, request_id)
                except TransitionNotAllowed as exc:
                    allowed = sorted({mapping.status(state.name) or state.name for state in exc.allowed})
                    options = f"Allowed: {', '.join(allowed)}" if allowed else "No status may follow it"
                    raise V1Error(
                        422, *VALIDATION_FAILED_422, {"status": f"Cannot change status to {status}. {options}"}
                    ) from None
                except InputValidationFailure as exc:
                    raise _refused(mapping, exc) from None
                etag = str(changed.etag)
        if "assigned_to" in sent:
            try:
                await self._tickets.assign(
                    principal, object_id, AssignTicketRequest(etag=etag, assignee=sent["assigned_to"]), request_id
                )
            except InputValidationFailure as exc:
                raise invalid_input({"assigned_to": next(iter(exc.reason.values()), exc.message)}) from None

    async def _settable_state(self, principal: Principal, mapping: PlatformMapping, status: str) -> StateLabelRow:
        """The state a status sets: the first of its states the tenant has."""
        for name in mapping.statuses[status]:
            state = await self._states.find(principal.tenant_id, name)
            if state is not None:
                return state
        raise V1Error(422, *VALIDATION_FAILED_422, {"status": f"This tenant has no state for the status {status}"})

    async def delete(
        self, principal: Principal, ticket_id: str, request_id: str, idempotency_key: str | None
    ) -> Outcome[None]:
        """The v2 deletion, Idempotency-Key included: it removes the ticket's files only once the deletion has
        committed, and a retry under the key finds the ticket it deleted (by its id, deleted or not) and answers
        204 again."""
        mapping = await self._platform(principal)
        internal_id = as_uuid(ticket_id)
        names = await self._tickets.names_by_id(principal.tenant_id, internal_id) if internal_id is not None else None
        if names is None or names.type_id != mapping.ticket_type.id:
            raise V1Error(404, *PLATFORM_TICKET_NOT_FOUND)
        _, replayed = await self._tickets.delete(principal, names.object_id, None, request_id, idempotency_key)
        return None, replayed

    async def add_comment(
        self,
        principal: Principal,
        ticket_id: str,
        request: CreateCommentRequest,
        request_id: str,
        idempotency_key: str | None,
    ) -> Outcome[PlatformComment]:
        if request.content is None:
            raise invalid_input({"content": "required"})
        mapping = await self._platform(principal)
        ticket = await self._ticket(principal, mapping, ticket_id)
        try:
            comment, replayed = await self._comments.create(
                principal, ticket.object_id, request, request_id, idempotency_key
            )
        except InputValidationFailure as exc:
            # Well-formed, but refused: no text once sanitised, a file of a type the tenant does not take.
            raise V1Error(422, *VALIDATION_FAILED_422, exc.reason or {"body": exc.message}) from None
        (out,) = await self._platform_comments(principal, [comment])
        return out, replayed

    # --- users -----------------------------------------------------------------------------------------------------

    async def users(
        self, principal: Principal, role: Role | None, status: str | None, q: str | None, page: int, per_page: int
    ) -> tuple[int, list[PlatformUser]]:
        if status is not None and status not in USER_STATUSES:
            raise invalid_input({"status": f"Status must be one of: {', '.join(USER_STATUSES)}"})
        total, rows = await self._users.page(principal, role, status, q, page, per_page)
        return total, [_user(row) for row in rows]

    # --- translation -----------------------------------------------------------------------------------------------

    async def _platform(self, principal: Principal) -> PlatformMapping:
        """The mapping, for a route that names a ticket: without the ticket type there is no such ticket."""
        mapping = await self._mapping.platform(principal.tenant_id)
        if mapping is None:
            raise V1Error(404, *PLATFORM_TICKET_NOT_FOUND)
        return mapping

    async def _ticket(self, principal: Principal, mapping: PlatformMapping, ticket_id: str) -> TicketRow:
        """The ticket as the caller may see it; an id that is not a UUID, or a ticket of another type, names no
        seed 004 ticket (404)."""
        internal_id = as_uuid(ticket_id)
        if internal_id is None:
            raise V1Error(404, *PLATFORM_TICKET_NOT_FOUND)
        ticket = await self._tickets.visible_by_id(principal, internal_id)
        if ticket.type_id != mapping.ticket_type.id:
            raise V1Error(404, *PLATFORM_TICKET_NOT_FOUND)
        return ticket

    async def _row_ticket(self, principal: Principal, row: TicketRow) -> _Ticket:
        label = await self._tickets.state_label(principal.tenant_id, row.state_id)
        return _Ticket(
            row.id,
            _data.decode(row.data),
            label.name if label is not None else None,
            row.created_at,
            row.updated_at,
            row.created_by,
            row.assignee,
        )

    async def _read(self, principal: Principal, mapping: PlatformMapping, ticket_id: str) -> PlatformTicket:
        row = await self._ticket(principal, mapping, ticket_id)
        (ticket,) = await self._platform_tickets(principal, mapping, [await self._row_ticket(principal, row)])
        return ticket

    async def _platform_tickets(
        self, principal: Principal, mapping: PlatformMapping, tickets: list[_Ticket]
    ) -> list[PlatformTicket]:
        people = await self._people(
            principal, [ticket.created_by for ticket in tickets] + [t.assignee for t in tickets if t.assignee]
        )
        return [_platform_ticket(mapping, ticket, people) for ticket in tickets]

    async def _platform_comments(self, principal: Principal, comments: list[CommentOut]) -> list[PlatformComment]:
        people = await self._people(principal, [comment.author.id for comment in comments])
        return [
            PlatformComment(
                id=comment.id,
                content=comment.content,
                created_at=seed_time(comment.created_at),
                created_by=people[comment.author.id],
                is_internal=comment.is_internal,
                attachments=[_attachment(file) for file in comment.attachments],
            )
            for comment in comments
        ]

    async def _people(self, principal: Principal, subjects: Iterable[str]) -> dict[str, Person]:
        wanted = set(subjects)
        known = await self._users.people(principal.tenant_id, wanted)
        return {subject: Person(subject, *known.get(subject, (None, None))) for subject in wanted}


@dataclass(frozen=True, slots=True)
class _Ticket:
    """What seed 004 shows of a ticket, from a list's row or a single read."""

    id: uuid.UUID
    data: dict[str, Any]
    state_name: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    created_by: str
    assignee: str | None


def _platform_ticket(mapping: PlatformMapping, ticket: _Ticket, people: dict[str, Person]) -> PlatformTicket:
    def member(name: str) -> Any:
        field_id = mapping.field_id(name)
        value = ticket.data.get(field_id) if field_id is not None else None
        return value if value not in ("", []) else None

    tags = member("tags")
    return PlatformTicket(
        id=ticket.id,
        title=member("title"),
        description=member("description"),
        status=mapping.status(ticket.state_name),
        priority=mapping.priority(member("priority")),
        created_at=seed_time(ticket.created_at),
        updated_at=seed_time(ticket.updated_at),
        created_by=people[ticket.created_by],
        assigned_to=people[ticket.assignee] if ticket.assignee else None,
        tags=tags if isinstance(tags, list) else [],
        custom_fields={
            key: ticket.data[field.definition.id]
            for key, field in mapping.custom_fields.items()
            if ticket.data.get(field.definition.id) not in (None, "", [])
        },
    )


def _attachment(file: AttachmentOut) -> PlatformAttachment:
    return PlatformAttachment(
        id=file.id,
        filename=file.filename,
        size=file.size,
        mime_type=file.mime_type,
        url=file.url,
        created_at=seed_time(file.created_at),
    )


def _user(row: UserOut) -> PlatformUser:
    return PlatformUser(
        id=row.subject,
        name=row.name,
        email=row.email,
        role=row.role,
        status=row.status,
        created_at=seed_time(row.created_at),
        last_login_at=seed_time(row.last_login_at) if row.last_login_at is not None else None,
    )


def _create_data(mapping: PlatformMapping, request: PlatformCreateTicketRequest) -> dict[str, Any]:
    """A create's data map, by field UUID; every member no field backs, and every unknown custom field, refused by
    name."""
    details: dict[str, str] = {}
    data: dict[str, Any] = {}
    for name in ("title", "description", "tags"):
        value = getattr(request, name)
        if value is None:
            continue
        field_id = mapping.field_id(name)
        if field_id is None:
            details[name] = "this tenant's tickets have no such field"
        else:
            data[field_id] = value
    data.update(_priority_change(mapping, {"priority": request.priority} if request.priority is not None else {}))
    for key, value in request.custom_fields.items():
        field = mapping.custom_fields.get(key)
        if field is None:
            details[f"custom_fields.{key[:64]}"] = "this tenant's tickets have no such field"
        else:
            data[field.definition.id] = value
    if details:
        raise invalid_input(details)
    return data


def _priority_change(mapping: PlatformMapping, sent: dict[str, Any]) -> dict[str, Any]:
    if "priority" not in sent:
        return {}
    priority_id = mapping.field_id("priority")
    if sent["priority"] not in mapping.priorities:
        raise invalid_input({"priority": _PRIORITY_PROBLEM})
    if priority_id is None:
        raise invalid_input({"priority": "this tenant's tickets have no such field"})
    return {priority_id: mapping.priorities[sent["priority"]]}


def _member_name(mapping: PlatformMapping, field_id: str) -> str:
    """A field UUID as seed 004 names it: its member, or custom_fields.<key>."""
    for name, field in mapping.members.items():
        if field.definition.id == field_id:
            return name
    for key, field in mapping.custom_fields.items():
        if field.definition.id == field_id:
            return f"custom_fields.{key}"
    return field_id


# v2's names for what a seed 004 request calls otherwise.
_V2_NAMES = {"state": "status", "pendingUntil": "status", "ticketTypeId": "body"}


def _refused(mapping: PlatformMapping, exc: InputValidationFailure) -> V1Error:
    """Values the ticket type refuses: 422, each under its seed 004 name."""
    details = {_V2_NAMES.get(key) or _member_name(mapping, key): problem for key, problem in exc.reason.items()}
    return V1Error(422, *VALIDATION_FAILED_422, details or {"body": exc.message})


def _listing_problems(reason: dict[str, str]) -> dict[str, str]:
    """The v2 list's refusals under seed 004's parameter names."""
    names = {"assignee": "assigned_to", "state": "status"}
    return {names.get(key, "priority" if key.startswith("data.") else key): problem for key, problem in reason.items()}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
