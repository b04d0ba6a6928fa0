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


class TicketTypeDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What an administrator sends (POST/PUT) and what each version stores."""

    name: str
    description: str = ""
    prefix: str
    fields: list[FieldDefinition]


class TicketTypeOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    description: str
    prefix: str
    version: int
    archived: bool
    fields: list[FieldDefinition]
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str


class TicketTypeList(msgspec.Struct, frozen=True):
    data: list[TicketTypeOut]


definition_decoder = msgspec.json.Decoder(TicketTypeDefinition)
definition_encoder = msgspec.json.Encoder()
