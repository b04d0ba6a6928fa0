"""Wire types of seed 004's API (the "Ticketing Platform API") at /api/v1, with the seed's member names.

Bodies come under `data`; people are `{id, name, email}`, where `id` is the subject a ticket or comment records (for
users of a builtin realm, also their id in the users directory); times are UTC to the second (2025-05-04T14:25:00Z).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app.tenancy.model import V1_PRIORITIES, V1_STATUSES
from app.ticket.dto import MAX_INLINE_ATTACHMENTS, Assignee, InlineAttachment, Pagination
from app.user.dto import Role, Status
from app.v1.tickets.dto import at_least_one_member

PRIORITIES = tuple(name for name, _ in V1_PRIORITIES)
STATUSES = tuple(name for name, _ in V1_STATUSES)
USER_STATUSES: tuple[Status, ...] = get_args(Status)
MAX_TAGS = 20


class Person(msgspec.Struct, frozen=True):
    id: str
    name: str | None
    email: str | None


class PlatformAttachment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    filename: str
    size: int
    mime_type: str
    # Where to download it, relative to this server.
    url: str
    created_at: str


class PlatformComment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    content: str
    created_at: str
    created_by: Person
    is_internal: bool
    attachments: list[PlatformAttachment]


class PlatformTicket(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket as seed 004 lists and changes it. Also what a write stores under its Idempotency-Key."""

    id: uuid.UUID
    title: str | None
    description: str | None
    # The status the ticket's state stands for (the tenant file's [v1.platform.statuses]), else the state's name.
    status: str | None
    priority: Any
    created_at: str
    updated_at: str
    created_by: Person
    assigned_to: Person | None
    tags: list[str]
    # The ticket type's other fields, by key: only those the ticket has a value for.
    custom_fields: dict[str, Any]


class PlatformTicketDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket as seed 004's GET /tickets/{id} shows it: PlatformTicket's members with its comments and files,
    in the seed's order (custom_fields last)."""

    id: uuid.UUID
    title: str | None
    description: str | None
    status: str | None
    priority: Any
    created_at: str
    updated_at: str
    created_by: Person
    assigned_to: Person | None
    tags: list[str]
    comments: list[PlatformComment]
    attachments: list[PlatformAttachment]
    custom_fields: dict[str, Any]


class PlatformTicketBody(msgspec.Struct, frozen=True):
    data: PlatformTicket


class PlatformTicketDetailBody(msgspec.Struct, frozen=True):
    data: PlatformTicketDetail


class PlatformTicketPage(msgspec.Struct, frozen=True):
    data: list[PlatformTicket]
    pagination: Pagination


class PlatformCommentBody(msgspec.Struct, frozen=True):
    data: PlatformComment


class PlatformUser(msgspec.Struct, frozen=True):
    # The subject its tickets and comments record (the value assigned_to and created_by filters take).
    id: str
    name: str | None
    email: str | None
    role: Role
    status: Status
    created_at: str
    last_login_at: str | None


class PlatformUserPage(msgspec.Struct, frozen=True):
    data: list[PlatformUser]
    pagination: Pagination


# Text, checked by the service (seed 004's own error example names a wrong priority in its words); documented as
# the values it takes.
_Priority = Annotated[str, Meta(extra_json_schema={"enum": list(PRIORITIES)})]
_Tags = Annotated[list[Annotated[str, Meta(min_length=1, max_length=50)]], Meta(max_length=MAX_TAGS)]


class PlatformCreateTicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    title: Annotated[str, Meta(min_length=1)]
    description: str | None = None
    priority: _Priority | None = None
    tags: _Tags | None = None
    custom_fields: Annotated[
        dict[str, Any], Meta(description="The ticket type's other fields, by key (the request type: browser, os, ...)")
    ] = {}
    attachments: Annotated[list[InlineAttachment], Meta(max_length=MAX_INLINE_ATTACHMENTS)] = []


class PlatformUpdateTicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Seed 004's PATCH: only the members sent change, all together or none."""

    documented_as: ClassVar[Any] = staticmethod(lambda: at_least_one_member(PlatformUpdateTicketRequest))

    status: Annotated[str, Meta(extra_json_schema={"enum": list(STATUSES)})] | UnsetType = UNSET
    priority: _Priority | UnsetType = UNSET
    # The agent's id (a subject, as GET /users shows it); null unassigns.
    assigned_to: Assignee | UnsetType | None = UNSET

    def sent(self) -> dict[str, Any]:
        return {name: value for name, value in msgspec.structs.asdict(self).items() if value is not UNSET}
