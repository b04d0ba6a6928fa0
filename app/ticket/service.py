"""Rules for tickets: values are validated against the ticket type's compiled field schemas before any SQL runs,
display IDs are allocated per tenant and prefix, updates, status changes and assignments are an etag
compare-and-swap (status changes checked against the type's workflow), deletion is soft and conditional on If-Match,
and any past version can be read back from the ticket's history.

Who sees a ticket is decided in one place, `visible`: a deleted ticket is not found (except, for audit, its history
and earlier versions to an administrator), and a customer-level caller finds only the tickets it created."""

from __future__ import annotations

import datetime
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar, cast

import msgspec

from app.auth.principal import Principal
from app.auth.requirements import ADMIN_SCOPE
from app.db.database import Database
from app.errors import InputValidationFailure, NamedState
from app.idempotency.service import Claim, Idempotency, Outcome
from app.ticket import listing
from app.ticket.dto import (
    ASSIGNEE_PATTERN,
    MAX_NOTE_LENGTH,
    AssigneeChange,
    AssignTicketRequest,
    ChangeStatusRequest,
    CommentEvent,
    CreateTicketRequest,
    HistoryEntry,
    InlineAttachment,
    PendingChange,
    StateChange,
    TicketOut,
)
from app.ticket.errors import (
    EtagMismatch,
    PreconditionFailed,
    TicketNotFound,
    TicketVersionNotFound,
    TransitionNotAllowed,
)
from app.ticket.includes import TicketIncludes
from app.ticket.listing import TicketQuery
from app.ticket.repository import HistoryRow, TicketNamesRow, TicketRepository, TicketRow
from app.ticket_state.cache import Labels, TicketStateCache
from app.ticket_state.dto import StateType
from app.ticket_state.repository import StateLabelRow, TicketStateRepository, TicketStateRow
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.values import value_problem

# Used with fullmatch: Python's "$" would also accept a trailing newline.
OBJECT_ID = re.compile(r"([A-Z]{2,5})-([0-9]{4,18})")
# States whose tickets wait until a time (pendingUntil): a pending-close ticket then moves on by itself.
PENDING_STATE_TYPES = ("pending close", "pending reminder")
ASSIGNED = "ticket.assigned"
# Used with fullmatch (the pattern's anchors are for the OpenAPI document).
_ASSIGNEE = re.compile(ASSIGNEE_PATTERN.removeprefix("^").removesuffix("$"))
_json = msgspec.json.Encoder()
_data_decoder = msgspec.json.Decoder(dict[str, Any])


class CreatedTicket(msgspec.Struct, frozen=True):
    """A create's outcome, also what it stores under its Idempotency-Key: the new ticket and the state it starts in.
    The state members default to null only for answers stored before responses named states."""

    id: uuid.UUID
    object_id: str
    etag: uuid.UUID
    state_id: uuid.UUID | None = None
    state_name: str | None = None
    state_type: StateType | None = None


class WrittenTicket(msgspec.Struct, frozen=True):
    """An update's or a status change's outcome, also what it stores under its Idempotency-Key: the ticket's new
    etag and the state it is in after the write (null members: see CreatedTicket)."""

    etag: uuid.UUID
    state_id: uuid.UUID | None = None
    state_name: str | None = None
    state_type: StateType | None = None


class AssignedTicket(msgspec.Struct, frozen=True):
    """An assignment's outcome, also what it stores under its Idempotency-Key: the new etag, the state (unchanged)
    and the assignee (None: unassigned)."""

    etag: uuid.UUID
    state_id: uuid.UUID | None
    state_name: str | None
    state_type: StateType | None
    assignee: str | None


class DeletedTicket(msgspec.Struct, frozen=True):
    """A deletion's outcome, also what it stores under its Idempotency-Key."""

    object_id: str
    # The deleted ticket's id, whose files go once the deletion has committed (None in answers stored before).
    id: uuid.UUID | None = None


R = TypeVar("R", bound=msgspec.Struct)


# Records a create's inline files against the new ticket (its id), inside the create's transaction.
RecordAttachments = Callable[[uuid.UUID], Awaitable[object]]


class TicketAttachments(Protocol):
    """What tickets ask of attachments, a package above this one (app.attachment answers): the files a create
    carries inline, and the removal of a deleted ticket's files. (A ticket's attachments for GET ?include=attachments
    come through TicketIncludes.)"""

    def staged(
        self, principal: Principal, files: Sequence[InlineAttachment], request_id: str
    ) -> AbstractAsyncContextManager[RecordAttachments | None]:
        """Check the files (400/413 naming a file) and store their blobs; the context's value records them against
        a ticket in the caller's transaction (None without files). Enter it outside that transaction: on leaving,
        blobs no committed row owns are removed."""

    async def remove_for_ticket(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> int:
        """After a ticket's deletion has committed: its attachments deleted and their blobs removed (safe to
        repeat; what fails is left to the orphan sweep)."""


class TicketService:
    def __init__(
        self,
        db: Database,
        repository: TicketRepository,
        types: TicketTypeCache,
        states: TicketStateRepository,
        state_labels: TicketStateCache,
        keys: Idempotency,
        *,
        includes: TicketIncludes,
        attachments: TicketAttachments,
    ) -> None:
        self._db = db
        self._attachments = attachments
        self._repository = repository
        self._types = types
        self._states = states
        self._state_labels = state_labels
        self._keys = keys
        self._includes = includes

    async def create(
        self, principal: Principal, request: CreateTicketRequest, request_id: str, idempotency_key: str | None
    ) -> Outcome[CreatedTicket]:
        async with self._attachments.staged(principal, request.attachments or (), request_id) as record:
            return await self._create(principal, request, request_id, idempotency_key, record)

    async def _create(
        self,
        principal: Principal,
        request: CreateTicketRequest,
        request_id: str,
        idempotency_key: str | None,
        record_attachments: RecordAttachments | None,
    ) -> Outcome[CreatedTicket]:
        async def write() -> CreatedTicket:
            ticket_type = await self._types.by_id(principal.tenant_id, request.ticketTypeId)
            if ticket_type is None or ticket_type.archived:
                raise InputValidationFailure(
                    "Invalid ticket type",
                    {"ticketTypeId": "no active ticket type with this id in the tenant"},
                )
            data, reason = ticket_type.complete_for_create(request.data)
            if reason:
                raise InputValidationFailure("Ticket data failed validation", reason)
            arguments = (
                principal.tenant_id,
                ticket_type.prefix,
                ticket_type.id,
                ticket_type.version,
                _json.encode(data).decode(),
                ticket_type.workflow.initial_state,
                principal.subject,
                principal.realm,
                request_id,
                principal.support_request,
                uuid.uuid4(),
            )
            if record_attachments is None:
                row = await self._repository.create(*arguments)
            else:
                # The ticket and its files commit together (within the Idempotency-Key's transaction, if any).
                async with self._db.transaction():
                    row = await self._repository.create(*arguments)
                    await record_attachments(row.id)
            state = await self._state_label(principal.tenant_id, row.state_id)
            return CreatedTicket(row.id, row.object_id, row.etag, *_state_members(row.state_id, state))

        # The key is looked up before the request is checked against its ticket type: a retry gets the first answer
        # even if the type has changed since and would now refuse the request (a different request under the key is
        # 422 whether or not the type would take it). A refused request rolls its claim of the key back.
        return await self._once(
            principal, self._idempotency(principal, idempotency_key, "create", request), write, _created_decoder
        )

    def _idempotency(self, principal: Principal, key: str | None, operation: str, *request: object) -> Claim | None:
        return self._keys.claim(principal, key, operation, *request)

    async def _once(
        self,
        principal: Principal,
        claim: Claim | None,
        write: Callable[[], Awaitable[R]],
        stored: msgspec.json.Decoder[R],
    ) -> Outcome[R]:
        """Run `write` (a single statement, or several in the caller's transaction) once per Idempotency-Key."""
        return await self._keys.once(principal, claim, write, stored)

    async def get(self, principal: Principal, object_id: str) -> TicketOut:
        row = await self.visible(principal, object_id)
        return to_out(row, await self._state_label(principal.tenant_id, row.state_id))

    async def get_including(
        self, principal: Principal, object_id: str, names: tuple[str, ...]
    ) -> tuple[TicketOut, list[tuple[str, bytes]]]:
        """The ticket and the JSON of each member `names` asks to embed (see app/ticket/includes.py)."""
        row = await self.visible(principal, object_id)
        ticket = to_out(row, await self._state_label(principal.tenant_id, row.state_id))
        return ticket, await self._includes.embed(principal, row, names)

    async def _state_label(self, tenant_id: uuid.UUID, state_id: uuid.UUID | None) -> StateLabelRow | None:
        if state_id is None:
            return None
        return await self._state_labels.label(tenant_id, state_id)

    async def visible(self, principal: Principal, object_id: str, *, audit: bool = False) -> TicketRow:
        """The ticket as the caller may see it, for every read and for the work around a ticket (comments,
        attachments): a deleted ticket, and for a customer-level caller a ticket it did not create, is not found
        (the same answer as a ticket that never existed, so nothing can be probed). With `audit` (its history and
        earlier versions), a deleted ticket is still found for an administrator: deletion keeps them for audit."""
        if OBJECT_ID.fullmatch(object_id) is None:
            raise TicketNotFound(object_id)
        include_deleted = audit and may_audit(principal)
        row = await self._repository.get(principal.tenant_id, object_id, include_deleted=include_deleted)
        if row is None or _hidden_from(principal, row):
            raise TicketNotFound(object_id)
        return row

    async def visible_by_id(self, principal: Principal, ticket_id: uuid.UUID) -> TicketRow:
        """`visible`, for a ticket named by its internal id (the v1 surface): the same rule, the same not found."""
        row = await self._repository.get_by_id(principal.tenant_id, ticket_id)
        if row is None or _hidden_from(principal, row):
            raise TicketNotFound(str(ticket_id))
        return row

    async def names_by_id(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> TicketNamesRow | None:
        """A ticket's display ID and type by its internal id, deleted or not: what a v1 DELETE passes on, so that
        its retry under the same Idempotency-Key finds the ticket it deleted and gets the first answer again."""
        return await self._repository.names_by_id(tenant_id, ticket_id)

    async def state_label(self, tenant_id: uuid.UUID, state_id: uuid.UUID | None) -> StateLabelRow | None:
        """The name and type of a ticket's state, from the worker's cache."""
        return await self._state_label(tenant_id, state_id)

    async def as_of(
        self, principal: Principal, object_id: str, at: datetime.datetime | None, etag: str | None
    ) -> TicketOut:
        """The ticket as a GET showed it after its last change at or before `at`, or when its etag was `etag`
        (before its deletion, if it was deleted)."""
        expected = None
        if etag is not None:
            # An etag that is not a UUID was never issued: no version has it, like the nil UUID.
            expected = as_uuid(etag) or uuid.UUID(int=0)
        ticket = await self.visible(principal, object_id, audit=True)
        row = await self._repository.as_of(principal.tenant_id, ticket.id, at, expected)
        if row is None:
            raise TicketVersionNotFound(object_id, etag if etag is not None else _timestamp(at))
        # The state's current name: names are not versioned (documented in the README).
        return to_out(row, await self._state_label(principal.tenant_id, row.state_id))

    async def history(
        self, principal: Principal, object_id: str, page: int, per_page: int
    ) -> tuple[int, list[HistoryEntry]]:
        ticket = await self.visible(principal, object_id, audit=True)
        # A customer-level caller never learns of an internal note, so neither of the event recording it.
        internal = not principal.customer_only
        total = await self._repository.count_events(principal.tenant_id, ticket.id, internal=internal)
        rows = await self._repository.history(
            principal.tenant_id, ticket.id, limit=per_page, offset=(page - 1) * per_page, internal=internal
        )
        state_ids = {state_id for row in rows for state_id in (row.state_id, row.previous_state_id)}
        labels = await self._state_labels.labels(principal.tenant_id, state_ids)
        return total, [_history_entry(row, labels) for row in rows]

    async def change_status(
        self,
        principal: Principal,
        object_id: str,
        request: ChangeStatusRequest,
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Outcome[WrittenTicket]:
        """Move the ticket to another state if its etag is still `request.etag` and its type's workflow allows
        it; return the new etag and state."""
        _check_status_request(request)
        idempotency = self._idempotency(principal, idempotency_key, "change_status", object_id, request)
        return await self._once(
            principal,
            idempotency,
            lambda: self._change_status(principal, object_id, request, request_id),
            _written_decoder,
        )

    async def _change_status(
        self, principal: Principal, object_id: str, request: ChangeStatusRequest, request_id: str
    ) -> WrittenTicket:
        assert request.etag is not None and request.state is not None
        ticket = await self.visible(principal, object_id)
        # The decision below is taken on this version; the write happens only if it is still the current one.
        if as_uuid(request.etag) != ticket.etag:
            raise EtagMismatch()
        states = await self._states.list_all(principal.tenant_id)
        target = _find_state(states, request.state)
        if target is None:
            raise InputValidationFailure(
                "Invalid ticket status change", {"state": "no ticket state of this tenant has this id or name"}
            )
        if not target.active:
            raise InputValidationFailure(
                "Invalid ticket status change", {"state": f"the state {target.name!r} is not active"}
            )
        current = next((state for state in states if state.id == ticket.state_id), None)
        current_name = current.name if current is not None else None
        ticket_type = await self._types.by_id(principal.tenant_id, ticket.type_id)
        assert ticket_type is not None  # types are archived, never deleted
        workflow = ticket_type.workflow
        if not workflow.allows(current_name, target.name):
            allowed = [
                NamedState(str(state.id), state.name)
                for state in states
                if state.active and workflow.allows(current_name, state.name)
            ]
            raise TransitionNotAllowed(current_name, target.name, allowed)
        reason = workflow.guard_problems(target.name, _data_decoder.decode(ticket.data))
        if reason:
            raise InputValidationFailure(f"The ticket cannot enter {target.name!r} yet", reason)
        _check_pending_time(request.pendingUntil, target)
        new_etag = uuid.uuid4()
        changed = await self._repository.change_status(
            principal.tenant_id,
            object_id,
            ticket.etag,
            new_etag,
            target.id,
            request.pendingUntil,
            principal.subject,
            request_id,
            principal.support_request,
            request.note,
        )
        if not changed:
            # Changed since it was read: by a client (its etag moved on) or by an admin (the state went inactive).
            raise EtagMismatch()
        return WrittenTicket(new_etag, target.id, target.name, target.state_type)

    async def update(
        self,
        principal: Principal,
        object_id: str,
        etag: str | None,
        changes: dict[str, Any] | None,
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Outcome[WrittenTicket]:
        """Merge `changes` into the ticket's data if its etag is still `etag`; return the new etag and the state."""
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
        prefix = match.group(1)
        if idempotency_key is None:
            # The hot path: no transaction, one statement.
            return await self._update(principal, object_id, prefix, etag, changes, request_id), False
        idempotency = self._idempotency(
            principal, idempotency_key, "update", object_id, {"etag": etag, "ticketUpdate": changes}
        )
        # The key is looked up before the values are checked against the ticket type (see create).
        return await self._once(
            principal,
            idempotency,
            lambda: self._update(principal, object_id, prefix, etag, changes, request_id),
            _written_decoder,
        )

    async def _update(
        self,
        principal: Principal,
        object_id: str,
        prefix: str,
        etag: str,
        changes: dict[str, Any],
        request_id: str,
    ) -> WrittenTicket:
        # The type comes from the display-ID prefix: values are validated without reading the ticket.
        ticket_type = await self._types.by_prefix(principal.tenant_id, prefix)
        if ticket_type is None:
            raise TicketNotFound(object_id)
        reason = ticket_type.check_update(changes)
        if reason:
            raise InputValidationFailure("Ticket update failed validation", reason)
        # An etag that is not a UUID was never issued by us, so it cannot be the current one.
        expected = as_uuid(etag)
        if expected is not None:
            new_etag = uuid.uuid4()
            updated = await self._repository.compare_and_swap(
                principal.tenant_id,
                object_id,
                expected,
                new_etag,
                _json.encode(changes).decode(),
                principal.subject,
                ticket_type.version,
                request_id,
                principal.support_request,
            )
            if updated is not None:
                state = await self._state_label(principal.tenant_id, updated.state_id)
                return WrittenTicket(new_etag, *_state_members(updated.state_id, state))
        if await self._repository.exists(principal.tenant_id, object_id):
            raise EtagMismatch()
        raise TicketNotFound(object_id)

    async def assign(
        self,
        principal: Principal,
        object_id: str,
        request: AssignTicketRequest,
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Outcome[AssignedTicket]:
        """Assign the ticket to `request.assignee` (None unassigns) if its etag is still `request.etag`; return the
        new etag, the state and the assignee. Any subject is accepted, known to the users directory or not (an
        identity provider's user joins it only on their first call)."""
        etag, assignee = _checked_assignment(request)
        if OBJECT_ID.fullmatch(object_id) is None:
            raise TicketNotFound(object_id)
        if idempotency_key is None:
            # The hot path, like an update's: no transaction, one statement.
            return await self._assign(principal, object_id, etag, assignee, request_id), False
        idempotency = self._idempotency(
            principal, idempotency_key, "assign", object_id, {"etag": etag, "assignee": assignee}
        )
        return await self._once(
            principal,
            idempotency,
            lambda: self._assign(principal, object_id, etag, assignee, request_id),
            _assigned_decoder,
        )

    async def _assign(
        self, principal: Principal, object_id: str, etag: str, assignee: str | None, request_id: str
    ) -> AssignedTicket:
        # An etag that is not a UUID was never issued by us, so it cannot be the current one.
        expected = as_uuid(etag)
        if expected is not None:
            new_etag = uuid.uuid4()
            assigned = await self._repository.assign(
                principal.tenant_id,
                object_id,
                expected,
                new_etag,
                assignee,
                principal.subject,
                request_id,
                principal.support_request,
            )
            if assigned is not None:
                state = await self._state_label(principal.tenant_id, assigned.state_id)
                return AssignedTicket(new_etag, *_state_members(assigned.state_id, state), assignee)
        if await self._repository.exists(principal.tenant_id, object_id):
            raise EtagMismatch()
        raise TicketNotFound(object_id)

    async def delete(
        self,
        principal: Principal,
        object_id: str,
        accepted_etags: list[uuid.UUID] | None,
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Outcome[DeletedTicket]:
        """Delete the ticket if its etag is one of `accepted_etags` (If-Match; None: whatever it is). It is kept, with
        its events, for audit: from now on it is not found, its display ID is never given out again, and only an
        administrator reads its history."""
        if OBJECT_ID.fullmatch(object_id) is None:
            raise TicketNotFound(object_id)
        etags = None if accepted_etags is None else sorted(str(etag) for etag in accepted_etags)
        idempotency = self._idempotency(principal, idempotency_key, "delete", object_id, etags)
        outcome = await self._once(
            principal,
            idempotency,
            lambda: self._delete(principal, object_id, accepted_etags, request_id),
            _deleted_decoder,
        )
        deleted, _ = outcome
        if deleted.id is not None:
            # Only now that the deletion has committed (a replay repeats this harmlessly); whatever fails here, or a
            # crash before it, the orphan sweep finishes, as a deleted ticket's files are not live.
            await self._attachments.remove_for_ticket(principal.tenant_id, deleted.id)
        return outcome

    async def _delete(
        self, principal: Principal, object_id: str, accepted_etags: list[uuid.UUID] | None, request_id: str
    ) -> DeletedTicket:
        if principal.customer_only:
            # A tenant file may give a customer role the delete permission: such a caller still reaches only the
            # tickets it created.
            await self.visible(principal, object_id)
        deleted = await self._repository.delete(
            principal.tenant_id,
            object_id,
            accepted_etags,
            uuid.uuid4(),
            principal.subject,
            request_id,
            principal.support_request,
        )
        if deleted is not None:
            return DeletedTicket(object_id, deleted)
        if accepted_etags is not None and await self._repository.exists(principal.tenant_id, object_id):
            raise PreconditionFailed()
        raise TicketNotFound(object_id)

    async def page(self, principal: Principal, query: TicketQuery) -> tuple[int, list[TicketOut]]:
        """A page of the tenant's tickets the query matches, with their exact number. A customer-level caller sees
        only the tickets it created."""
        tenant_id = principal.tenant_id
        listing.check_text(query)
        creator = query.created_by
        # A customer asking for someone else's tickets gets none, once its query is known to be well-formed.
        others = principal.customer_only and creator is not None and creator != principal.subject
        creator_realm = None
        if principal.customer_only:
            creator, creator_realm = principal.subject, principal.realm
        state_ids = None
        if query.states:
            found = [(wanted, await self._state_labels.find(tenant_id, wanted)) for wanted in query.states]
            unknown = [wanted for wanted, state in found if state is None]
            if unknown:
                named = ", ".join(repr(wanted[:64]) for wanted in unknown)
                raise InputValidationFailure("Invalid query parameters", {"state": f"{listing.UNKNOWN_STATE}: {named}"})
            state_ids = tuple(state.id for _, state in found if state is not None)
        needs_fields = bool(query.fields) or (query.sort is not None and query.sort.startswith("data."))
        types = await self._types.all_types(tenant_id) if needs_fields else ()
        where, order = listing.plan(query, types, state_ids, creator, creator_realm)
        if others:
            return 0, []
        total, rows = await self._repository.page(
            tenant_id, where, order, limit=query.per_page, offset=(query.page - 1) * query.per_page
        )
        labels = await self._state_labels.labels(tenant_id, {row.state_id for row in rows})
        return total, [to_out(row, _label(labels, row.state_id)) for row in rows]


def _hidden_from(principal: Principal, row: TicketRow) -> bool:
    """Whether the ticket is not the caller's to see: a customer-level caller sees only the tickets it created, its
    subject in its realm (two realms of a tenant may issue one `sub` to different people)."""
    return principal.customer_only and (row.created_by != principal.subject or row.created_realm != principal.realm)


def last_page(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def may_audit(principal: Principal) -> bool:
    """Whether the caller administers the tenant's tickets (an admin role and the tickets:admin scope): it reads the
    history and earlier versions of deleted tickets."""
    return "admin" in principal.permissions and ADMIN_SCOPE in principal.scopes


def _checked_assignment(request: AssignTicketRequest) -> tuple[str, str | None]:
    reason: dict[str, str] = {}
    if not request.etag:
        reason["etag"] = "required: the ticket's current etag (from GET, create or the previous change)"
    if isinstance(request.assignee, msgspec.UnsetType):
        reason["assignee"] = "required: the subject to assign the ticket to, or null to unassign it"
    elif request.assignee is not None and _ASSIGNEE.fullmatch(request.assignee) is None:
        reason["assignee"] = "a subject: 1 to 255 printable ASCII characters"
    if reason:
        raise InputValidationFailure("Invalid request body", reason)
    assert request.etag is not None and not isinstance(request.assignee, msgspec.UnsetType)
    return request.etag, request.assignee


def _check_status_request(request: ChangeStatusRequest) -> None:
    reason: dict[str, str] = {}
    if not request.etag:
        reason["etag"] = "required: the ticket's current etag (from GET, create or the previous change)"
    if not request.state:
        reason["state"] = "required: the id or name of the state to move to"
    if request.note is not None:
        if len(request.note) > MAX_NOTE_LENGTH:
            reason["note"] = f"at most {MAX_NOTE_LENGTH} characters"
        elif (unstorable := value_problem(request.note)) is not None:
            reason["note"] = unstorable
    if request.pendingUntil is not None and not is_storable_time(request.pendingUntil):
        reason["pendingUntil"] = TIME_FORMAT
    if reason:
        raise InputValidationFailure("Invalid request body", reason)


def _check_pending_time(pending_until: datetime.datetime | None, target: TicketStateRow) -> None:
    problem = None
    if target.state_type in PENDING_STATE_TYPES:
        if pending_until is None:
            problem = f"required for the {target.state_type} state {target.name!r}: when the wait ends"
        elif pending_until <= datetime.datetime.now(datetime.UTC):
            problem = "must be in the future"
    elif pending_until is not None:
        problem = f"only for pending states; {target.name!r} is a {target.state_type} state"
    if problem is not None:
        raise InputValidationFailure("Invalid request body", {"pendingUntil": problem})


TIME_FORMAT = "an ISO 8601 timestamp with a time zone, in the years 1 to 9999 in UTC, e.g. 2026-11-22T18:00:00Z"


def is_storable_time(moment: datetime.datetime) -> bool:
    """Whether a time has a zone and is still a datetime once in UTC (0001-01-01T00:00+01:00 is not)."""
    if moment.tzinfo is None:
        return False
    try:
        moment.astimezone(datetime.UTC)
    except OverflowError:
        return False
    return True


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _find_state(states: list[TicketStateRow], wanted: str) -> TicketStateRow | None:
    wanted_id = as_uuid(wanted)
    by_id = next((state for state in states if state.id == wanted_id), None)
    # An id wins over a name, even a state named like another state's id.
    return by_id or next((state for state in states if state.name.lower() == wanted.lower()), None)


def _label(labels: Labels, state_id: uuid.UUID | None) -> StateLabelRow | None:
    return labels[state_id] if state_id is not None else None


def _state_members(
    state_id: uuid.UUID | None, label: StateLabelRow | None
) -> tuple[uuid.UUID | None, str | None, StateType | None]:
    """A response's state_id, state_name and state_type."""
    if label is None:
        return state_id, None, None
    return state_id, label.name, label.state_type


def _history_entry(row: HistoryRow, labels: Labels) -> HistoryEntry:
    state = None
    if row.state_id != row.previous_state_id:
        old, new = _label(labels, row.previous_state_id), _label(labels, row.state_id)
        state = StateChange(
            old=row.previous_state_id,
            new=row.state_id,
            old_name=old.name if old is not None else None,
            new_name=new.name if new is not None else None,
            old_state_type=old.state_type if old is not None else None,
            new_state_type=new.state_type if new is not None else None,
        )
    pending = None
    if row.pending_until != row.previous_pending_until:
        pending = PendingChange(old=row.previous_pending_until, new=row.pending_until)
    # An assignment shows both sides even when it named the assignee the ticket already had.
    assignee = None
    if row.kind == ASSIGNED or row.assignee != row.previous_assignee:
        assignee = AssigneeChange(old=row.previous_assignee, new=row.assignee)
    comment = None
    if row.comment_id is not None:
        comment = CommentEvent(id=row.comment_id, is_internal=row.internal)
    return HistoryEntry(
        sequence=row.sequence,
        event=row.kind,
        at=row.created_at,
        actor=row.actor,
        request_id=row.request_id,
        support=row.support,
        etag=str(row.etag),
        # Stored jsonb text, passed through (see to_out).
        changes=cast(Any, msgspec.Raw(row.changes)),
        state=state,
        pending_until=pending,
        assignee=assignee,
        note=row.note,
        comment=comment,
        attachment_id=row.attachment_id,
    )


def _timestamp(at: datetime.datetime | None) -> str:
    return at.isoformat() if at is not None else ""


# What a create and what an update or a status change store under an Idempotency-Key.
_created_decoder = msgspec.json.Decoder(CreatedTicket)
_written_decoder = msgspec.json.Decoder(WrittenTicket)
_assigned_decoder = msgspec.json.Decoder(AssignedTicket)
_deleted_decoder = msgspec.json.Decoder(DeletedTicket)


def to_out(row: TicketRow, state: StateLabelRow | None) -> TicketOut:
    return TicketOut(
        etag=str(row.etag),
        id=row.id,
        object_id=row.object_id,
        ticket_type_id=row.type_id,
        ticket_type_version=row.type_version,
        state_id=row.state_id,
        state_name=state.name if state is not None else None,
        state_type=state.state_type if state is not None else None,
        pending_until=row.pending_until,
        # The stored JSONB text goes out as is (msgspec.Raw); decoding and re-encoding it would be wasted work.
        data=cast(Any, msgspec.Raw(row.data)),
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        lastUpdatedBy=row.updated_by,
        assignee=row.assignee,
    )
