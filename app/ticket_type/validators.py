"""Ticket-type definitions: checked before they are accepted, then compiled once per type version.

An administrator's field schema runs against every client's input, so it is treated as hostile too: it must be
valid JSON Schema 2020-12, refer to nothing outside itself, use only RE2-compatible patterns, and stay small.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from jsonschema import Draft202012Validator, SchemaError

from app.config import PROJECT_ROOT
from app.errors import InputValidationFailure
from app.schema_validation import UnsafePattern, compile_pattern, json_path, safe_validator
from app.ticket_type.dto import FieldDefinition, TicketTypeDefinition

DEFINITION_SCHEMA_PATH = PROJECT_ROOT / "schemas" / "ticket-type.schema.json"
MAX_DEFINITION_BYTES = 256 * 1024
MAX_FIELD_SCHEMA_BYTES = 32 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_VALUE_DEPTH = 32
MAX_MESSAGE = 300
MAX_EXPANDED_NODES = 10_000

# Keywords refused in field schemas: they would make jsonschema run regexes on Python's backtracking engine
# (patternProperties), or let a schema reach outside itself.
_REFUSED_KEYWORDS = {
    "patternProperties": "patternProperties is not supported (its regexes would not run on RE2)",
    "$dynamicRef": "$dynamicRef is not supported",
    "$id": "$id is not supported: field schemas are anonymous",
}
EMPTY_VALUES: tuple[Any, ...] = (None, "", [])


def is_empty(value: Any) -> bool:
    """The contract's "clear" values: "", null and []."""
    return value is None or value == "" or value == []


@cache
def _definition_validator() -> Any:
    schema = json.loads(DEFINITION_SCHEMA_PATH.read_text())
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
    if reason:
        raise InputValidationFailure("Invalid ticket type definition", reason)
    return definition


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why a field schema cannot be accepted, or None."""
    if len(msgspec.json.encode(schema)) > MAX_FIELD_SCHEMA_BYTES:
        return f"larger than {MAX_FIELD_SCHEMA_BYTES} bytes"
    references: dict[str, set[str]] = {}
    for depth, definition, node in _schema_nodes(schema):
        if depth > MAX_SCHEMA_DEPTH:
            return f"nested deeper than {MAX_SCHEMA_DEPTH} levels"
        for keyword in _REFUSED_KEYWORDS.keys() & node.keys():
            return _REFUSED_KEYWORDS[keyword]
        reference = node.get("$ref")
        if isinstance(reference, str):
            match = _LOCAL_DEFINITION.match(reference)
            if match is None:
                return f"$ref {reference!r} is not supported: only references to this schema's $defs (#/$defs/name)"
            references.setdefault(definition or "", set()).add(match.group(1))
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                compile_pattern(pattern)
            except UnsafePattern as exc:
                return f"pattern {pattern!r} is not supported: {exc} (RE2: no backreferences or look-around)"
    if _has_cycle(references):
        return "recursive $ref is not supported"
    if _expanded_size(schema, references) > MAX_EXPANDED_NODES:
        return f"expands to more than {MAX_EXPANDED_NODES} subschemas through its $refs"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema 2020-12: {exc.message} at {json_path(exc.absolute_path) or 'root'}"
    return None


_LOCAL_DEFINITION = re.compile(r"^#/\$defs/([A-Za-z0-9_.-]+)$")
# Keywords whose values are data, not schemas: never walked for $ref, pattern or refused keywords.
_VALUE_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Keywords whose values map names to schemas.
_SCHEMA_MAPS = frozenset({"properties", "$defs", "dependentSchemas"})


def _schema_nodes(schema: Any) -> Iterator[tuple[int, str | None, dict[str, Any]]]:
    """Every subschema (as a dict) with its depth and the $defs entry it belongs to (None for the root)."""
    stack: list[tuple[int, str | None, Any]] = [(0, None, schema)]
    while stack:
        depth, definition, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield depth, definition, node
        for keyword, value in node.items():
            if keyword in _VALUE_KEYWORDS:
                continue
            if keyword in _SCHEMA_MAPS and isinstance(value, dict):
                for name, subschema in value.items():
                    owner = name if keyword == "$defs" and depth == 0 else definition
                    stack.append((depth + 1, owner, subschema))
            elif isinstance(value, dict):
                stack.append((depth + 1, definition, value))
            elif isinstance(value, list):
                stack.extend((depth + 1, definition, item) for item in value)


def _has_cycle(references: dict[str, set[str]]) -> bool:
    """Whether the $defs reference graph loops (a $ref chain that never ends, or a recursive schema)."""
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> bool:
        if name in done:
            return False
        if name in visiting:
            return True
        visiting.add(name)
        looped = any(visit(target) for target in references.get(name, ()))
        visiting.discard(name)
        done.add(name)
        return looped

    return any(visit(name) for name in list(references))


def _expanded_size(schema: dict[str, Any], references: dict[str, set[str]]) -> int:
    """How many subschemas validation may visit with every $ref expanded: a chain of definitions that each refer
    to the next twice doubles at every step, so a small schema could otherwise cost exponential time."""
    own: dict[str | None, int] = {}
    uses: dict[str | None, list[str]] = {}
    for _, definition, node in _schema_nodes(schema):
        owner = definition or None
        own[owner] = own.get(owner, 0) + 1
        reference = node.get("$ref")
        if isinstance(reference, str):
            uses.setdefault(owner, []).append(reference.rsplit("/", 1)[-1])
    sizes: dict[str | None, int] = {}

    def size(owner: str | None) -> int:
        if owner not in sizes:
            # No cycles (checked before): the recursion ends, and memoising makes it linear.
            sizes[owner] = own.get(owner, 0) + sum(size(target) for target in uses.get(owner, ()))
            sizes[owner] = min(sizes[owner], MAX_EXPANDED_NODES + 1)
        return sizes[owner]

    return size(None)


def _rebase_refs(schema: Any, base: str) -> Any:
    """Copy a field schema so its $refs still resolve once it is nested inside a bigger schema."""
    if not isinstance(schema, dict):
        return schema
    rebased: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "$ref" and isinstance(value, str):
            rebased[keyword] = base + value[1:]
        elif keyword in _VALUE_KEYWORDS:
            rebased[keyword] = value
        elif keyword in _SCHEMA_MAPS and isinstance(value, dict):
            rebased[keyword] = {name: _rebase_refs(subschema, base) for name, subschema in value.items()}
        elif isinstance(value, list):
            rebased[keyword] = [_rebase_refs(item, base) for item in value]
        else:
            rebased[keyword] = _rebase_refs(value, base)
    return rebased


def first_error(validator: Any, value: Any) -> str | None:
    """The first problem only: validation stops there, so a hostile value cannot make us enumerate every error.
    Messages are cut, because jsonschema quotes the offending value and it may be huge."""
    error = next(validator.iter_errors(value), None)
    if error is None:
        return None
    location = json_path(error.absolute_path)
    message = error.message
    if len(message) > MAX_MESSAGE:
        # Keep both ends: the start of the quoted value and the verdict ("... is too long") that follows it.
        message = message[: MAX_MESSAGE // 2] + "…" + message[-(MAX_MESSAGE // 2 - 1) :]
    return f"{location}: {message}" if location else message


def value_problem(value: Any, limit: int = MAX_VALUE_DEPTH) -> str | None:
    """What makes a value unstorable before any schema looks at it: nesting deeper than `limit` (checked
    iteratively, before recursive validation) or a NUL character, which PostgreSQL text and jsonb cannot hold."""
    stack = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return f"value nests deeper than {limit} levels"
        if isinstance(current, str):
            if "\x00" in current:
                return "text may not contain the NUL character (\\u0000)"
        elif isinstance(current, dict):
            if any("\x00" in key for key in current):
                return "text may not contain the NUL character (\\u0000)"
            stack.extend((v, depth + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current)
    return None


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

    @classmethod
    def compile(
        cls, tenant_id: uuid.UUID, type_id: uuid.UUID, version: int, archived: bool, definition: TicketTypeDefinition
    ) -> CompiledType:
        fields = {f.id: CompiledField(f, safe_validator(f.schema)) for f in definition.fields}
        return cls(tenant_id, type_id, version, definition.prefix, archived, definition, fields)

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
            # Any field that is not required may be cleared with "", null or [].
            if definition.required:
                properties[field_id] = _rebase_refs(value_schema, f"#/properties/{field_id}")
            else:
                rebased = _rebase_refs(value_schema, f"#/properties/{field_id}/anyOf/0")
                properties[field_id] = {"anyOf": [rebased, {"enum": list(EMPTY_VALUES)}]}
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"{self.definition.name} (version {self.version}) ticket data",
            "type": "object",
            "properties": properties,
            "required": [f.definition.id for f in self.fields.values() if f.definition.required],
            "additionalProperties": False,
        }
