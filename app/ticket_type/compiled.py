"""Ticket-type definitions: checked before they are accepted, then compiled once per type version.

An administrator's field schema runs against every client's input, so it is treated as hostile too: it must be
valid JSON Schema 2020-12, refer to nothing outside itself, use only RE2-compatible patterns, and stay small.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from jsonschema import Draft202012Validator

from app.errors import InputValidationFailure
from app.schema_validation import (
    SCHEMA_MAPS,
    VALUE_KEYWORDS,
    first_error,
    json_path,
    safe_validator,
    schema_problem,
)
from app.ticket_type.dto import FieldDefinition, TicketTypeDefinition, definition_schema
from app.ticket_type.values import EMPTY_VALUES, is_empty, value_problem
from app.ticket_type.workflow import CompiledWorkflow, workflow_problems

MAX_DEFINITION_BYTES = 256 * 1024


@cache
def _definition_validator() -> Any:
    schema = definition_schema()
    Draft202012Validator.check_schema(schema)
    return safe_validator(schema)


def validate_definition(document: Any) -> TicketTypeDefinition:
    """Check a ticket-type definition; raise INPUT_VALIDATION_FAILURE naming every problem found."""
    if len(msgspec.json.encode(document)) > MAX_DEFINITION_BYTES:
        raise InputValidationFailure(
            "Invalid ticket type definition", {"definition": f"larger than {MAX_DEFINITION_BYTES} bytes"}
        )
    reason: dict[str, str] = {}
    for error in _definition_validator().iter_errors(document):
        reason.setdefault(json_path(error.absolute_path) or "definition", error.message)
    if reason:
        raise InputValidationFailure("Invalid ticket type definition", reason)
    definition = msgspec.convert(document, TicketTypeDefinition)
    ids: set[str] = set()
    keys: set[str] = set()
    for index, field in enumerate(definition.fields):
        where = f"fields[{index}]"
        if field.id in ids:
            reason[f"{where}.id"] = f"{field.id} is used by another field"
        if field.key in keys:
            reason[f"{where}.key"] = f"{field.key!r} is used by another field"
        ids.add(field.id)
        keys.add(field.key)
        problem = schema_problem(field.schema)
        if problem is not None:
            reason[f"{where}.schema"] = problem
        elif field.default is not msgspec.UNSET:
            if (unstorable := value_problem(field.default)) is not None:
                reason[f"{where}.default"] = unstorable.removeprefix("value ")
            elif (error := first_error(safe_validator(field.schema), field.default)) is not None:
                reason[f"{where}.default"] = f"does not satisfy the field schema: {error}"
    if definition.workflow is not None:
        reason.update(workflow_problems(definition.workflow, ids))
    if reason:
        raise InputValidationFailure("Invalid ticket type definition", reason)
    return definition


def _rebase_refs(schema: Any, base: str) -> Any:
    """Copy a field schema so its $refs still resolve once it is nested inside a bigger schema."""
    if not isinstance(schema, dict):
        return schema
    rebased: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "$ref" and isinstance(value, str):
            rebased[keyword] = base + value[1:]
        elif keyword in VALUE_KEYWORDS:
            rebased[keyword] = value
        elif keyword in SCHEMA_MAPS and isinstance(value, dict):
            rebased[keyword] = {name: _rebase_refs(subschema, base) for name, subschema in value.items()}
        elif isinstance(value, list):
            rebased[keyword] = [_rebase_refs(item, base) for item in value]
        else:
            rebased[keyword] = _rebase_refs(value, base)
    return rebased


@dataclass(frozen=True, slots=True)
class CompiledField:
    definition: FieldDefinition
    validator: Any

    def problem(self, value: Any) -> str | None:
        return first_error(self.validator, value)


@dataclass(frozen=True, slots=True)
class CompiledType:
    tenant_id: uuid.UUID
    id: uuid.UUID
    version: int
    prefix: str
    archived: bool
    definition: TicketTypeDefinition
    fields: dict[str, CompiledField]
    workflow: CompiledWorkflow

    @classmethod
    def compile(
        cls, tenant_id: uuid.UUID, type_id: uuid.UUID, version: int, archived: bool, definition: TicketTypeDefinition
    ) -> CompiledType:
        fields = {f.id: CompiledField(f, safe_validator(f.schema)) for f in definition.fields}
        workflow = CompiledWorkflow.compile(definition.workflow)
        return cls(tenant_id, type_id, version, definition.prefix, archived, definition, fields, workflow)

    def check_update(self, changes: dict[str, Any]) -> dict[str, str]:
        """Per-field problems with a ticketUpdate map (empty when it may be applied)."""
        reason: dict[str, str] = {}
        for field_id, value in changes.items():
            field = self.fields.get(field_id)
            if field is None:
                reason[field_id] = "unknown field for this ticket type"
            elif field.definition.readOnly:
                reason[field_id] = "field is read-only"
            elif is_empty(value):
                if field.definition.required:
                    reason[field_id] = "field is required and cannot be cleared"
            elif (unstorable := value_problem(value)) is not None:
                reason[field_id] = unstorable
            elif (problem := field.problem(value)) is not None:
                reason[field_id] = problem
        return reason

    def complete_for_create(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The data of a new ticket (sent values plus defaults) and the per-field problems."""
        reason: dict[str, str] = {}
        document: dict[str, Any] = {}
        for field_id, value in data.items():
            field = self.fields.get(field_id)
            if field is None:
                reason[field_id] = "unknown field for this ticket type"
            elif is_empty(value):
                document[field_id] = value
            elif (unstorable := value_problem(value)) is not None:
                reason[field_id] = unstorable
            elif (problem := field.problem(value)) is not None:
                reason[field_id] = problem
            else:
                document[field_id] = value
        for field_id, field in self.fields.items():
            if field_id not in data and field.definition.default is not msgspec.UNSET:
                document[field_id] = field.definition.default
            if field.definition.required and is_empty(document.get(field_id)) and field_id not in reason:
                reason[field_id] = "field is required"
        return document, reason

    def data_schema(self) -> dict[str, Any]:
        """One JSON Schema for a whole ticket `data` document of this type version."""
        properties: dict[str, Any] = {}
        for field_id, field in self.fields.items():
            definition = field.definition
            value_schema = dict(definition.schema)
            value_schema.setdefault("title", definition.name)
            if definition.description:
                value_schema.setdefault("description", definition.description)
            if definition.readOnly:
                value_schema["readOnly"] = True
            if definition.default is not msgspec.UNSET:
                value_schema["default"] = definition.default
            # A field that is not required may be cleared with "", null or []; a required one never holds those,
            # even where its own schema would allow them.
            if definition.required:
                rebased = _rebase_refs(value_schema, f"#/properties/{field_id}/allOf/0")
                properties[field_id] = {"allOf": [rebased, {"not": {"enum": list(EMPTY_VALUES)}}]}
            else:
                rebased = _rebase_refs(value_schema, f"#/properties/{field_id}/anyOf/0")
                properties[field_id] = {"anyOf": [rebased, {"enum": list(EMPTY_VALUES)}]}
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"{self.definition.name} (version {self.version}) ticket data",
            "type": "object",
            "properties": properties,
            # A required field with a default may be left out: the service fills in the default.
            "required": [
                f.definition.id
                for f in self.fields.values()
                if f.definition.required and f.definition.default is msgspec.UNSET
            ],
            "additionalProperties": False,
        }
