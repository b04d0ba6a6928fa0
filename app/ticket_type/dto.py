"""Wire types of the ticket-type API."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec


class FieldDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    id: str
    key: str
    name: str
    description: str = ""
    required: bool = False
    readOnly: bool = False
    # UNSET (not None) marks "no default", because null is a legitimate default value; UNSET is never encoded.
    default: Any = msgspec.UNSET
    schema: dict[str, Any]


class Workflow(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """A ticket type's status workflow. States are named (case-insensitively), so a template fits any tenant."""

    # Where new tickets of the type start; None: the tenant's default_create state.
    initialState: str | None = None
    # From-state name to the names of the states that may follow it; None: any active state may follow any other.
    transitions: dict[str, list[str]] | None = None
    # State name to a JSON Schema over the ticket's data that must hold before a status change enters the state.
    guards: dict[str, dict[str, Any]] = {}


class TicketTypeDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What an administrator sends (POST/PUT) and what each version stores. Unset members are left out, so the
    definition schema (schemas/ticket-type.schema.json) checks exactly what was sent."""

    name: str
    description: str = ""
    prefix: str
    fields: list[FieldDefinition]
    workflow: Workflow | None = None


class TicketTypeOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    description: str
    prefix: str
    version: int
    archived: bool
    fields: list[FieldDefinition]
    workflow: Workflow | None
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str


class TicketTypeList(msgspec.Struct, frozen=True):
    data: list[TicketTypeOut]


definition_decoder = msgspec.json.Decoder(TicketTypeDefinition)
definition_encoder = msgspec.json.Encoder()
