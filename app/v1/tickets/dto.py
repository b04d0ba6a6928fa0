"""Wire types of the v1 ticket resource (seeds 000 and 001), with the seeds' member names."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Meta

# What the members must be on every tenant (a tenant's ticket type says the rest: categories, lengths, formats).
_Status = Annotated[str, Meta(min_length=1, description="The name of a state of the ticket type's workflow")]


class _StatusChangeAsEnforced(msgspec.Struct, forbid_unknown_fields=True):
    status: _Status


class StatusChangeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Seed 000's body. Decoded leniently so that a missing or mistyped status is reported in the seed's shape."""

    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _StatusChangeAsEnforced)
    status: Any = UNSET


class _TicketUpdateAsEnforced(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    category: Annotated[
        str, Meta(min_length=1, description="One of the type's categories (default: seed 001's nine)")
    ] = ""
    title: Annotated[str, Meta(min_length=1, description="Short summary (the facility type: at most 120)")] = ""
    description: str | None = None
    attachments: Annotated[list[str], Meta(description="Attachment URLs")] | None = None
    notes: Annotated[str, Meta(description="A single text string, not an array")] | None = None


def at_least_one_member(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The struct's JSON Schema, saying that a body must have at least one of its members (a partial update)."""
    schema = msgspec.json.schema(struct)
    schema["$defs"][struct.__name__]["minProperties"] = 1
    return schema


class TicketUpdateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Seed 001's partial update: only the members sent change. status, assignedTo and userId are read here only to
    be refused by name, as are the members no field backs."""

    documented_as: ClassVar[Any] = staticmethod(lambda: at_least_one_member(_TicketUpdateAsEnforced))
    category: Any = UNSET
    title: Any = UNSET
    description: Any = UNSET
    attachments: Any = UNSET
    notes: Any = UNSET
    status: Any = UNSET
    assignedTo: Any = UNSET
    userId: Any = UNSET
    id: Any = UNSET
    createdAt: Any = UNSET
    updatedAt: Any = UNSET

    def sent(self) -> dict[str, Any]:
        """The members the client sent, by v1 name."""
        return {name: value for name, value in msgspec.structs.asdict(self).items() if value is not UNSET}


class V1Ticket(msgspec.Struct, frozen=True):
    """The ticket as seeds 000 and 001 answer it. Also what a v1 write stores under its Idempotency-Key."""

    id: uuid.UUID
    # The subject that created the ticket (seeds 000/001 show UUIDs; here, whatever the identity provider's sub is).
    userId: str
    # The name of the ticket's state (null if it has none).
    status: str | None
    category: str | None
    title: str | None
    description: str | None
    attachments: list[str]
    assignedTo: str | None
    notes: str | None
    # UTC, to the second, as in the seeds: 2024-01-15T10:30:00Z.
    createdAt: str
    updatedAt: str
