"""Wire types of the ticket-type API."""

from __future__ import annotations

import datetime
import json
import uuid
from functools import cache
from typing import Any, ClassVar

import msgspec

from app.config import PROJECT_ROOT

DEFINITION_SCHEMA_PATH = PROJECT_ROOT / "schemas" / "ticket-type.schema.json"


@cache
def definition_schema() -> dict[str, Any]:
    """The JSON Schema every ticket-type definition is checked against (compiled.validate_definition)."""
    schema: dict[str, Any] = json.loads(DEFINITION_SCHEMA_PATH.read_text())
    return schema


def _accepting_null(schema: dict[str, Any], *members: str) -> dict[str, Any]:
    """The schema of what a request may send: msgspec reads null as an absent optional member (the struct defaults
    to None, which is left out) before the definition schema checks what remains."""
    properties = dict(schema["properties"])
    for member in members:
        described = properties[member]
        properties[member] = {
            "description": described["description"],
            "anyOf": [{k: v for k, v in described.items() if k != "description"}, {"type": "null"}],
        }
    return {**schema, "properties": properties}


def _documented_definition() -> dict[str, Any]:
    return _accepting_null(definition_schema(), "workflow")


def _documented_part(name: str, *nullable: str) -> dict[str, Any]:
    """One of the definition schema's $defs, standalone (with the $defs it refers to)."""
    schema = definition_schema()
    return _accepting_null({**schema["$defs"][name], "$defs": schema["$defs"]}, *nullable)


# Definitions are checked against DEFINITION_SCHEMA_PATH (naming every problem at once) after msgspec decodes them
# leniently; the document shows that schema, whose $defs are named after these structs (app/openapi.py).


class FieldDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    documented_as: ClassVar[Any] = staticmethod(lambda: _documented_part("FieldDefinition"))
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

    documented_as: ClassVar[Any] = staticmethod(lambda: _documented_part("Workflow", "initialState", "transitions"))

    # Where new tickets of the type start; None: the tenant's default_create state.
    initialState: str | None = None
    # From-state name to the names of the states that may follow it; None: any active state may follow any other.
    transitions: dict[str, list[str]] | None = None
    # State name to a JSON Schema over the ticket's data that must hold before a status change enters the state.
    guards: dict[str, dict[str, Any]] = {}


class TicketTypeDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What an administrator sends (POST/PUT) and what each version stores. Unset members are left out, so the
    definition schema (schemas/ticket-type.schema.json) checks exactly what was sent."""

    documented_as: ClassVar[Any] = staticmethod(_documented_definition)

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
