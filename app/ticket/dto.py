"""Wire types of the ticket API. Names follow the contract (seed 002): `ticketUpdate`, `objectId` in write
responses, `object_id` and `lastUpdatedBy` in reads; everything else is snake_case like `object_id`.

A ticket's state is named next to its id as flat siblings, `state_id`, `state_name` and `state_type`, the way the
ticket already carries `ticket_type_id` and `ticket_type_version` (and `state_type` is the ticket-state resource's
own member name). The name and type are the state's current ones, also in as-of reads and the history; null when
the ticket has no state, or the history names a state deleted since.

`created_by` and `assignee` are subjects (a token's `sub`), as `updated_by` is; an assignee is any subject, whether
or not the users directory knows it yet (an identity provider's user joins it on their first call)."""

from __future__ import annotations

import datetime
import functools
import uuid
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app.ticket_state.dto import StateType

CatalogType = Literal["template", "agent", "user"]
MAX_NOTE_LENGTH = 2000
# A field's id in a ticket type: the keys of `data` and `ticketUpdate` (schemas/ticket-type.schema.json).
FIELD_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Etag = Annotated[
    str,
    Meta(
        min_length=1,
        description="The ticket's current etag, from the latest GET of the ticket or the previous create, update or "
        "status change",
    ),
]


class _UpdateTicketAsEnforced(msgspec.Struct, forbid_unknown_fields=True):
    etag: Etag
    ticketUpdate: Annotated[
        dict[Annotated[str, Meta(pattern=FIELD_ID_PATTERN)], Any],
        Meta(
            min_length=1,
            description="Field UUID to new value (the ticket type's fields[].id); only these fields change. "
            '"", null or [] clears a field.',
        ),
    ]


class _ChangeStatusAsEnforced(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    etag: Etag
    state: Annotated[str, Meta(min_length=1, description="The id or name (any letter case) of the state to move to")]
    note: Annotated[str, Meta(max_length=MAX_NOTE_LENGTH, description="Kept in the ticket's history")] | None = None
    pendingUntil: (
        Annotated[
            datetime.datetime,
            Meta(tz=True, description="Required for pending states (when the wait ends), refused for others"),
        ]
        | None
    ) = None


MAX_INLINE_ATTACHMENTS = 20
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class InlineAttachment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A file sent inside a JSON body (seed 004), on ticket create or with a comment; the whole body is under
    MAX_BODY_BYTES."""

    filename: Annotated[str, Meta(min_length=1, max_length=1024, description="Reduced to a safe name")]
    content: Annotated[
        str, Meta(min_length=1, pattern=BASE64_PATTERN, description="The file's bytes, base64 (RFC 4648, padded)")
    ]
    mime_type: (
        Annotated[str, Meta(max_length=255, description="The declared type; it must agree with the content")] | None
    ) = None


# An assignee is a subject as OpenID Connect Core limits it: at most 255 ASCII characters, here the printable ones.
MAX_ASSIGNEE_LENGTH = 255
ASSIGNEE_PATTERN = f"^[ -~]{{1,{MAX_ASSIGNEE_LENGTH}}}$"
Assignee = Annotated[
    str,
    Meta(
        pattern=ASSIGNEE_PATTERN,
        description="The subject (a token's sub) to assign the ticket to: 1 to 255 printable ASCII characters. Any "
        "subject is accepted, whether or not the users directory knows it yet",
    ),
]


class _AssignTicketAsEnforced(msgspec.Struct, forbid_unknown_fields=True):
    etag: Etag
    assignee: Annotated[Assignee | None, Meta(description="null unassigns the ticket")]


class _CreateTicketAsEnforced(msgspec.Struct, forbid_unknown_fields=True):
    ticketTypeId: uuid.UUID
    data: Annotated[
        dict[Annotated[str, Meta(pattern=FIELD_ID_PATTERN)], Any],
        Meta(description="Field UUID to value (the ticket type's fields[].id); defaults fill the fields left out"),
    ] = {}
    attachments: Annotated[
        list[InlineAttachment],
        Meta(max_length=MAX_INLINE_ATTACHMENTS, description="Files to attach to the new ticket (seed 004)"),
    ] = []


class CreateTicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Any key here, so that every key the type does not have is named in the contract's INPUT_VALIDATION_FAILURE;
    # the document states what the service enforces (app/openapi.py).
    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _CreateTicketAsEnforced)
    ticketTypeId: uuid.UUID
    data: dict[str, Any] = {}
    # Unset (not null) when absent: a request without files keeps the Idempotency-Key fingerprint it always had.
    attachments: Annotated[list[InlineAttachment], Meta(max_length=MAX_INLINE_ATTACHMENTS)] | UnsetType = UNSET


class UpdateTicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Optional here so that a missing etag or map is reported in the contract's INPUT_VALIDATION_FAILURE shape (both
    # at once, under their own names); the document states what the service enforces (app/openapi.py).
    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _UpdateTicketAsEnforced)
    etag: str | None = None
    ticketUpdate: dict[str, Any] | None = None


class ChangeStatusRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Optional here so that a missing etag or state is reported in the contract's INPUT_VALIDATION_FAILURE shape; the
    # document states what the service enforces (app/openapi.py).
    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _ChangeStatusAsEnforced)
    etag: str | None = None
    # The target state's id or name (names are case-insensitive).
    state: str | None = None
    note: str | None = None
    # Required when the target is a pending state: when a pending-close ticket moves on, or a reminder is due.
    pendingUntil: datetime.datetime | None = None


class AssignTicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Lenient, like UpdateTicketRequest: a missing etag or assignee, or an assignee of the wrong form, is reported in
    # the contract's INPUT_VALIDATION_FAILURE shape. UNSET tells a missing assignee from null (unassign).
    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _AssignTicketAsEnforced)
    etag: str | None = None
    assignee: str | msgspec.UnsetType | None = msgspec.UNSET


class UpdateTicketResponse(msgspec.Struct, frozen=True):
    success: bool
    message: str
    status: int
    etag: str
    # The state the ticket is in after the write (a replay shows it as the first answer did).
    state_id: uuid.UUID | None
    state_name: str | None
    state_type: StateType | None


class AssignTicketResponse(msgspec.Struct, frozen=True):
    success: bool
    message: str
    status: int
    etag: str
    state_id: uuid.UUID | None
    state_name: str | None
    state_type: StateType | None
    assignee: str | None


class CreateTicketResponse(msgspec.Struct, frozen=True):
    success: bool
    message: str
    status: int
    objectId: str
    id: uuid.UUID
    etag: str
    # The state the ticket starts in.
    state_id: uuid.UUID | None
    state_name: str | None
    state_type: StateType | None


class TicketOut(msgspec.Struct, frozen=True):
    etag: str
    id: uuid.UUID
    object_id: str
    ticket_type_id: uuid.UUID
    ticket_type_version: int
    state_id: uuid.UUID | None
    state_name: str | None
    state_type: StateType | None
    pending_until: datetime.datetime | None
    # Served as stored: the JSONB text is passed through as msgspec.Raw, never decoded and re-encoded.
    data: dict[str, Any]
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str
    lastUpdatedBy: str
    # The subject the ticket is assigned to; null while unassigned.
    assignee: str | None


class Pagination(msgspec.Struct, frozen=True):
    total: int
    per_page: int
    current_page: int
    last_page: int
    next_page_url: str | None
    prev_page_url: str | None


class TicketPage(msgspec.Struct, frozen=True):
    data: list[TicketOut]
    pagination: Pagination


class StateChange(msgspec.Struct, frozen=True):
    old: uuid.UUID | None
    new: uuid.UUID | None
    old_name: str | None
    new_name: str | None
    old_state_type: StateType | None
    new_state_type: StateType | None


class PendingChange(msgspec.Struct, frozen=True):
    old: datetime.datetime | None
    new: datetime.datetime | None


class AssigneeChange(msgspec.Struct, frozen=True):
    old: str | None
    new: str | None


class CommentEvent(msgspec.Struct, frozen=True):
    id: uuid.UUID  # the comment's id (GET .../comments/{id})
    is_internal: bool


class HistoryEntry(msgspec.Struct, frozen=True):
    sequence: int  # 1 for the creation, then one more per change
    # ticket.created, ticket.updated, ticket.status_changed, ticket.assigned, ticket.deleted, comment.created,
    # attachment.created or attachment.deleted
    event: str
    at: datetime.datetime
    actor: str
    request_id: str
    support: bool
    etag: str  # the ticket's etag after this change
    # Field UUID to {"old", "new"}: every initial value on creation, every changed value on update.
    changes: dict[str, Any]
    state: StateChange | None  # set when the state changed (on creation: the initial state)
    pending_until: PendingChange | None  # set when the pending time changed
    assignee: AssigneeChange | None  # set by an assignment
    note: str | None
    # comment.created: the comment it added (customer-level callers never see an internal note's event).
    comment: CommentEvent | None
    # attachment.created and attachment.deleted: the attachment added or deleted (data and etag do not change).
    attachment_id: uuid.UUID | None


class HistoryPage(msgspec.Struct, frozen=True):
    data: list[HistoryEntry]
    pagination: Pagination
