"""Ticket-type definitions: what `validate_definition` refuses, and how a compiled type judges ticket data.

The generated data schema is cross-checked with the jsonschema library itself (not our RE2 validator): a document
`complete_for_create` accepts must satisfy it, and one it refuses must not.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from app.config import PROJECT_ROOT
from app.errors import InputValidationFailure
from app.ticket_type.compiled import CompiledType, validate_definition
from app.ticket_type.dto import TicketTypeDefinition

TENANT = uuid.UUID("11111111-1111-4111-8111-111111111111")
TYPE = uuid.UUID("33333333-3333-4333-8333-333333333333")

TITLE = "3f44db9a-839c-45a1-b635-ba63a5bac8b8"
COUNT = "0c7a168a-d370-4c0b-ba20-c2496408df00"
TAGS = "9cda1550-d70c-4bfd-98fb-0dc660064469"
CODE = "698ae286-332a-4175-a16b-6d65fed8290e"
OWNER = "a8c7bfd4-ce4d-47ac-990c-eba4c48aad33"
ADDRESS = "4246b271-56e6-4643-ae4e-adc93a6db4d3"
LINES = "50338430-0c71-4038-a7fe-3060f77cb91d"
UNKNOWN = "00000000-0000-4000-8000-000000000000"

# A field schema that reaches shared parts through $ref to its own $defs; used by a required and an optional field
# so that both ways data_schema() nests a field schema keep the references resolvable.
ADDRESS_SCHEMA: dict[str, Any] = {
    "$defs": {"line": {"type": "string", "minLength": 1, "maxLength": 40}},
    "type": "object",
    "properties": {"street": {"$ref": "#/$defs/line"}, "city": {"$ref": "#/$defs/line"}},
    "required": ["street"],
    "additionalProperties": False,
}
LINES_SCHEMA: dict[str, Any] = {
    "$defs": {"line": {"$ref": "#/$defs/text"}, "text": {"type": "string", "minLength": 1}},
    "type": "array",
    "minItems": 1,
    "items": {"$ref": "#/$defs/line"},
}

DEFINITION: dict[str, Any] = {
    "name": "Work order",
    "description": "Fields of every kind the compiled type distinguishes.",
    "prefix": "WO",
    "fields": [
        {
            "id": TITLE,
            "key": "title",
            "name": "Title",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 20},
        },
        {"id": COUNT, "key": "count", "name": "Count", "default": 1, "schema": {"type": "integer", "minimum": 0}},
        {
            "id": TAGS,
            "key": "tags",
            "name": "Tags",
            "default": [],
            "schema": {"type": "array", "uniqueItems": True, "items": {"type": "string", "maxLength": 10}},
        },
        {
            "id": CODE,
            "key": "code",
            "name": "Code",
            "description": "Set at creation only.",
            "readOnly": True,
            "schema": {"type": "string", "pattern": "^[A-Z]{3}$"},
        },
        {
            "id": OWNER,
            "key": "owner",
            "name": "Owner",
            "required": True,
            "default": "nobody",
            "schema": {"type": "string", "minLength": 1},
        },
        {"id": ADDRESS, "key": "address", "name": "Address", "schema": ADDRESS_SCHEMA},
        {"id": LINES, "key": "lines", "name": "Lines", "required": True, "schema": LINES_SCHEMA},
    ],
}


def definition(change: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any]:
    document = copy.deepcopy(DEFINITION)
    if change is not None:
        change(document)
    return document


def compiled(document: dict[str, Any] | None = None) -> CompiledType:
    return CompiledType.compile(TENANT, TYPE, 3, False, validate_definition(document or definition()))


def refusal(document: Any) -> dict[str, str]:
    with pytest.raises(InputValidationFailure) as caught:
        validate_definition(document)
    assert caught.value.message == "Invalid ticket type definition"
    return caught.value.reason


def field(index: int, **members: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets members of field `index` (UNSET removes the member)."""

    def change(document: dict[str, Any]) -> None:
        for name, value in members.items():
            if value is msgspec.UNSET:
                del document["fields"][index][name]
            else:
                document["fields"][index][name] = value

    return change


def top(**members: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets top-level members of the definition (UNSET removes the member)."""

    def change(document: dict[str, Any]) -> None:
        for name, value in members.items():
            if value is msgspec.UNSET:
                del document[name]
            else:
                document[name] = value

    return change


# --- validate_definition ---------------------------------------------------------------------------------------


def test_valid_definition_is_returned_as_a_struct() -> None:
    result = validate_definition(definition())
    assert isinstance(result, TicketTypeDefinition)
    assert result.prefix == "WO"
    assert [f.key for f in result.fields] == ["title", "count", "tags", "code", "owner", "address", "lines"]
    assert result.fields[1].default == 1
    assert result.fields[0].default is msgspec.UNSET
    assert result.fields[3].readOnly is True
    assert result.workflow is None


def test_null_is_a_legitimate_default() -> None:
    result = validate_definition(definition(field(1, default=None, schema={"type": ["integer", "null"]})))
    assert result.fields[1].default is None


@pytest.mark.parametrize(
    "template", sorted((PROJECT_ROOT / "schemas" / "templates").glob("*.json")), ids=lambda path: path.stem
)
def test_every_template_is_a_valid_definition(template: Path) -> None:
    document = json.loads(template.read_text())
    result = validate_definition(document)
    assert len(result.fields) == len(document["fields"])
    # And it compiles, with a data schema that is itself valid JSON Schema.
    Draft202012Validator.check_schema(compiled(document).data_schema())


def test_there_are_templates() -> None:
    assert {path.stem for path in (PROJECT_ROOT / "schemas" / "templates").glob("*.json")} >= {
        "contact",
        "facility-request",
        "payment",
        "request",
    }


FIELD_ID_PATTERN = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(top(name=""), {"name": "'' should be non-empty"}, id="empty-name"),
        pytest.param(top(prefix="wo"), {"prefix": "'wo' does not match '^[A-Z]{2,5}$'"}, id="lower-case-prefix"),
        pytest.param(top(prefix="W"), {"prefix": "'W' does not match '^[A-Z]{2,5}$'"}, id="one-letter-prefix"),
        pytest.param(
            # RE2 semantics: `$` is the end of the text, so a trailing newline is no way around the pattern.
            top(prefix="WO\n"),
            {"prefix": "'WO\\n' does not match '^[A-Z]{2,5}$'"},
            id="prefix-with-trailing-newline",
        ),
        pytest.param(top(fields=[]), {"fields": "[] should be non-empty"}, id="no-fields"),
        pytest.param(top(fields=msgspec.UNSET), {"definition": "'fields' is a required property"}, id="fields-missing"),
        pytest.param(
            top(colour="red"),
            {"definition": "Additional properties are not allowed ('colour' was unexpected)"},
            id="unknown-member",
        ),
        pytest.param(
            field(0, id="NOT-A-UUID"),
            {"fields[0].id": f"'NOT-A-UUID' does not match {FIELD_ID_PATTERN}"},
            id="field-id-not-a-uuid",
        ),
        pytest.param(
            field(0, id=TITLE.upper()),
            {"fields[0].id": f"'{TITLE.upper()}' does not match {FIELD_ID_PATTERN}"},
            id="field-id-upper-case",
        ),
        pytest.param(
            field(2, key="Tags"),
            {"fields[2].key": "'Tags' does not match '^[a-z][a-z0-9_]{0,63}$'"},
            id="field-key-upper-case",
        ),
        pytest.param(
            field(2, schema=msgspec.UNSET),
            {"fields[2]": "'schema' is a required property"},
            id="field-schema-missing",
        ),
        pytest.param(
            field(2, schema=[]), {"fields[2].schema": "[] is not of type 'object'"}, id="field-schema-not-object"
        ),
        pytest.param(
            field(2, required="yes"), {"fields[2].required": "'yes' is not of type 'boolean'"}, id="required-not-bool"
        ),
        pytest.param(
            top(name="", prefix="x"),
            {"name": "'' should be non-empty", "prefix": "'x' does not match '^[A-Z]{2,5}$'"},
            id="every-problem-is-named",
        ),
    ],
)
def test_definition_schema_refusals(change: Callable[[dict[str, Any]], None], reason: dict[str, str]) -> None:
    assert refusal(definition(change)) == reason


def duplicate_field(index: int, **overrides: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["fields"].append({**document["fields"][index], **overrides})

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            duplicate_field(0, key="other"),
            {"fields[7].id": f"{TITLE} is used by another field"},
            id="duplicate-id",
        ),
        pytest.param(
            duplicate_field(0, id=UNKNOWN),
            {"fields[7].key": "'title' is used by another field"},
            id="duplicate-key",
        ),
        pytest.param(
            duplicate_field(0),
            {"fields[7].id": f"{TITLE} is used by another field", "fields[7].key": "'title' is used by another field"},
            id="duplicate-field",
        ),
    ],
)
def test_duplicate_fields(change: Callable[[dict[str, Any]], None], reason: dict[str, str]) -> None:
    assert refusal(definition(change)) == reason


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        pytest.param(
            {"patternProperties": {"^a": {}}},
            "patternProperties is not supported (its regexes would not run on RE2)",
            id="patternProperties",
        ),
        pytest.param(
            {"$ref": "https://example.com/s.json"},
            "$ref 'https://example.com/s.json' is not supported: only references to this schema's $defs (#/$defs/name)",
            id="external-ref",
        ),
        pytest.param(
            {"$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"},
            "recursive $ref is not supported",
            id="recursive-ref",
        ),
        pytest.param({"$id": "urn:x"}, "$id is not supported: these schemas are anonymous", id="id"),
        pytest.param(
            {"type": "string", "pattern": "(?=x)"},
            "pattern '(?=x)' is not supported: invalid perl operator: (?= (RE2: no backreferences or look-around)",
            id="lookahead-pattern",
        ),
        pytest.param(
            {"type": "strin"},
            "not a valid JSON Schema 2020-12: 'strin' is not valid under any of the given schemas at type",
            id="invalid-json-schema",
        ),
    ],
)
def test_unsafe_field_schemas(schema: dict[str, Any], reason: str) -> None:
    assert refusal(definition(field(2, schema=schema))) == {"fields[2].schema": reason}


def test_default_is_not_checked_against_an_unsafe_schema() -> None:
    # The schema's problem is reported; the default is not run through a schema that could not be trusted.
    reason = refusal(definition(field(1, schema={"$id": "urn:x"}, default="anything")))
    assert reason == {"fields[1].schema": "$id is not supported: these schemas are anonymous"}


def deep_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("index", "default", "reason"),
    [
        pytest.param(1, "one", "does not satisfy the field schema: 'one' is not of type 'integer'", id="wrong-type"),
        pytest.param(1, -1, "does not satisfy the field schema: -1 is less than the minimum of 0", id="below-minimum"),
        pytest.param(
            2,
            ["a", "a"],
            "does not satisfy the field schema: array items are not unique",
            id="not-unique",
        ),
        pytest.param(
            2, ["ok", 5], "does not satisfy the field schema: [1]: 5 is not of type 'string'", id="located-item"
        ),
        pytest.param(
            5,
            {"street": ""},
            "does not satisfy the field schema: street: '' should be non-empty",
            id="through-ref",
        ),
        pytest.param(0, "a\x00b", "text may not contain the NUL character (\\u0000)", id="nul-text"),
        pytest.param(
            5, {"street\x00": "x"}, "text may not contain the NUL character (\\u0000)", id="nul-in-object-key"
        ),
        pytest.param(2, deep_list(40), "nests deeper than 32 levels", id="too-deep"),
    ],
)
def test_defaults_must_be_storable_and_satisfy_the_schema(index: int, default: Any, reason: str) -> None:
    assert refusal(definition(field(index, default=default))) == {f"fields[{index}].default": reason}


@pytest.mark.parametrize(
    ("workflow", "reason"),
    [
        pytest.param(
            {"initialState": "NEW", "transitions": {"NEW": ["new"]}},
            {"workflow.transitions.NEW": "a state cannot follow itself"},
            id="self-transition",
        ),
        pytest.param(
            {"transitions": {"A": ["B", "b"]}},
            {"workflow.transitions.A": "a next state is named twice (state names are case-insensitive)"},
            id="next-state-twice-in-other-case",
        ),
        pytest.param(
            {"guards": {"DONE": {"required": [UNKNOWN]}}},
            {"workflow.guards.DONE": f"names fields this type does not have: {UNKNOWN}"},
            id="guard-names-unknown-field",
        ),
        pytest.param(
            {"guards": {"DONE": {"patternProperties": {}}}},
            {"workflow.guards.DONE": "patternProperties is not supported (its regexes would not run on RE2)"},
            id="unsafe-guard",
        ),
        pytest.param(
            # Caught by the definition schema (uniqueItems) before the workflow rules run.
            {"transitions": {"A": ["B", "B"]}},
            {"workflow.transitions.A": "array items are not unique"},
            id="next-state-twice",
        ),
        pytest.param(
            {"guards": {"DONE": []}},
            {"workflow.guards.DONE": "[] is not of type 'object'"},
            id="guard-not-an-object",
        ),
        pytest.param(
            {"initialState": ""},
            {"workflow.initialState": "'' should be non-empty"},
            id="empty-state-name",
        ),
    ],
)
def test_workflow_problems_are_reported(workflow: dict[str, Any], reason: dict[str, str]) -> None:
    assert refusal(definition(top(workflow=workflow))) == reason


def test_workflow_problems_come_with_field_problems() -> None:
    document = definition(top(workflow={"transitions": {"A": ["a"]}}))
    document["fields"][1]["default"] = "one"
    assert refusal(document) == {
        "fields[1].default": "does not satisfy the field schema: 'one' is not of type 'integer'",
        "workflow.transitions.A": "a state cannot follow itself",
    }


def test_valid_workflow_is_kept() -> None:
    workflow = {
        "initialState": "NEW",
        "transitions": {"NEW": ["OPEN"], "OPEN": []},
        "guards": {"OPEN": {"required": [OWNER]}},
    }
    result = validate_definition(definition(top(workflow=workflow)))
    assert result.workflow is not None
    assert result.workflow.initialState == "NEW"
    assert result.workflow.transitions == {"NEW": ["OPEN"], "OPEN": []}
    assert result.workflow.guards == {"OPEN": {"required": [OWNER]}}


def test_oversize_definition_is_refused_before_anything_else() -> None:
    document = definition(top(description="x" * (256 * 1024), name=""))
    with pytest.raises(InputValidationFailure) as caught:
        validate_definition(document)
    assert caught.value.message == "Invalid ticket type definition"
    assert caught.value.reason == {"definition": "larger than 262144 bytes"}


# --- CompiledType ----------------------------------------------------------------------------------------------


def test_compile_keeps_identity_and_fields() -> None:
    compiled_type = compiled()
    assert (compiled_type.tenant_id, compiled_type.id, compiled_type.version) == (TENANT, TYPE, 3)
    assert compiled_type.prefix == "WO"
    assert compiled_type.archived is False
    assert list(compiled_type.fields) == [TITLE, COUNT, TAGS, CODE, OWNER, ADDRESS, LINES]
    assert compiled_type.workflow.initial_state is None
    assert compiled_type.workflow.transitions is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({TITLE: "New title", COUNT: 4}, {}, id="valid"),
        pytest.param({}, {}, id="nothing"),
        pytest.param({UNKNOWN: "x"}, {UNKNOWN: "unknown field for this ticket type"}, id="unknown-field"),
        pytest.param({CODE: "ABC"}, {CODE: "field is read-only"}, id="read-only"),
        pytest.param({CODE: None}, {CODE: "field is read-only"}, id="read-only-cannot-be-cleared"),
        pytest.param({TITLE: ""}, {TITLE: "field is required and cannot be cleared"}, id="clear-required-empty"),
        pytest.param({TITLE: None}, {TITLE: "field is required and cannot be cleared"}, id="clear-required-null"),
        pytest.param({LINES: []}, {LINES: "field is required and cannot be cleared"}, id="clear-required-array"),
        pytest.param({COUNT: None, TAGS: [], ADDRESS: ""}, {}, id="clear-optional"),
        pytest.param({TITLE: "a\x00"}, {TITLE: "text may not contain the NUL character (\\u0000)"}, id="nul-text"),
        pytest.param(
            {TAGS: ["ok", "b\x00"]}, {TAGS: "text may not contain the NUL character (\\u0000)"}, id="nul-in-array"
        ),
        pytest.param({TITLE: "x" * 21}, {TITLE: f"'{'x' * 21}' is too long"}, id="too-long"),
        pytest.param({COUNT: "3"}, {COUNT: "'3' is not of type 'integer'"}, id="wrong-type"),
        pytest.param({TAGS: ["a", "a"]}, {TAGS: "array items are not unique"}, id="not-unique"),
        pytest.param({ADDRESS: {"city": "X"}}, {ADDRESS: "'street' is a required property"}, id="nested-required"),
        pytest.param({ADDRESS: {"street": ""}}, {ADDRESS: "street: '' should be non-empty"}, id="through-ref"),
        pytest.param({LINES: ["a", ""]}, {LINES: "[1]: '' should be non-empty"}, id="through-ref-chain"),
        pytest.param({TAGS: deep_list(40)}, {TAGS: "value nests deeper than 32 levels"}, id="too-deep"),
        pytest.param(
            {UNKNOWN: 1, CODE: "ABC", TITLE: None, COUNT: -1},
            {
                UNKNOWN: "unknown field for this ticket type",
                CODE: "field is read-only",
                TITLE: "field is required and cannot be cleared",
                COUNT: "-1 is less than the minimum of 0",
            },
            id="every-problem-is-named",
        ),
    ],
)
def test_check_update(changes: dict[str, Any], reason: dict[str, str]) -> None:
    assert compiled().check_update(changes) == reason


MINIMAL = {TITLE: "Leak", LINES: ["one"]}
DEFAULTS = {COUNT: 1, TAGS: [], OWNER: "nobody"}


@pytest.mark.parametrize(
    ("data", "document", "reason"),
    [
        pytest.param(MINIMAL, {**MINIMAL, **DEFAULTS}, {}, id="defaults-applied"),
        pytest.param(
            {**MINIMAL, COUNT: 7, OWNER: "me", TAGS: ["x"]},
            {**MINIMAL, COUNT: 7, OWNER: "me", TAGS: ["x"]},
            {},
            id="sent-values-win-over-defaults",
        ),
        pytest.param(
            {**MINIMAL, COUNT: None, TAGS: ""},
            {**MINIMAL, COUNT: None, TAGS: "", OWNER: "nobody"},
            {},
            id="cleared-optional-fields-stay-cleared",
        ),
        pytest.param({**MINIMAL, CODE: "ABC"}, {**MINIMAL, **DEFAULTS, CODE: "ABC"}, {}, id="read-only-settable"),
        pytest.param(
            {LINES: ["one"]}, {LINES: ["one"], **DEFAULTS}, {TITLE: "field is required"}, id="required-missing"
        ),
        pytest.param(
            {**MINIMAL, TITLE: ""},
            {**MINIMAL, **DEFAULTS, TITLE: ""},
            {TITLE: "field is required"},
            id="required-empty",
        ),
        pytest.param(
            {**MINIMAL, OWNER: None},
            {**MINIMAL, COUNT: 1, TAGS: [], OWNER: None},
            {OWNER: "field is required"},
            id="required-with-default-cleared",
        ),
        pytest.param(
            {**MINIMAL, UNKNOWN: "x"},
            {**MINIMAL, **DEFAULTS},
            {UNKNOWN: "unknown field for this ticket type"},
            id="unknown-field",
        ),
        pytest.param(
            {**MINIMAL, TITLE: 5},
            {LINES: ["one"], **DEFAULTS},
            {TITLE: "5 is not of type 'string'"},
            id="invalid-required-value-named-once",
        ),
        pytest.param(
            {**MINIMAL, ADDRESS: {"street": "a\x00"}},
            {**MINIMAL, **DEFAULTS},
            {ADDRESS: "text may not contain the NUL character (\\u0000)"},
            id="nul-text",
        ),
    ],
)
def test_complete_for_create(data: dict[str, Any], document: dict[str, Any], reason: dict[str, str]) -> None:
    assert compiled().complete_for_create(data) == (document, reason)


def test_complete_for_create_does_not_share_mutable_defaults() -> None:
    compiled_type = compiled()
    first, _ = compiled_type.complete_for_create(MINIMAL)
    second, _ = compiled_type.complete_for_create(MINIMAL)
    assert first[TAGS] == second[TAGS] == []


# --- data_schema, cross-checked with jsonschema ----------------------------------------------------------------


def test_data_schema_shape() -> None:
    schema = compiled().data_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Work order (version 3) ticket data"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    # The owner is required but has a default: a document may leave it out, the service fills it in.
    assert schema["required"] == [TITLE, LINES]
    assert list(schema["properties"]) == [TITLE, COUNT, TAGS, CODE, OWNER, ADDRESS, LINES]
    assert schema["properties"][TITLE] == {
        "allOf": [
            {"type": "string", "minLength": 1, "maxLength": 20, "title": "Title"},
            {"not": {"enum": [None, "", []]}},
        ]
    }
    assert schema["properties"][OWNER]["allOf"][0]["default"] == "nobody"
    optional = schema["properties"][CODE]
    assert optional == {
        "anyOf": [
            {
                "type": "string",
                "pattern": "^[A-Z]{3}$",
                "title": "Code",
                "description": "Set at creation only.",
                "readOnly": True,
            },
            {"enum": [None, "", []]},
        ]
    }


def test_data_schema_rebases_refs_to_the_nested_field_schema() -> None:
    schema = compiled().data_schema()
    address = schema["properties"][ADDRESS]["anyOf"][0]
    assert address["properties"]["street"] == {"$ref": f"#/properties/{ADDRESS}/anyOf/0/$defs/line"}
    lines = schema["properties"][LINES]["allOf"][0]
    assert lines["items"] == {"$ref": f"#/properties/{LINES}/allOf/0/$defs/line"}
    assert lines["$defs"]["line"] == {"$ref": f"#/properties/{LINES}/allOf/0/$defs/text"}
    # The field's own schema is untouched.
    assert compiled().fields[ADDRESS].definition.schema == ADDRESS_SCHEMA


def test_data_schema_does_not_rebase_data() -> None:
    schema_with_data = {"enum": [{"$ref": "#/$defs/x"}], "default": {"$ref": "#/$defs/x"}}
    document = definition(field(2, schema=schema_with_data, default=msgspec.UNSET))
    data_schema = compiled(document).data_schema()
    assert data_schema["properties"][TAGS]["anyOf"][0]["enum"] == [{"$ref": "#/$defs/x"}]


# Candidates for a new ticket's data (defaults are added as the service adds them). Values avoid the one place
# where jsonschema and our validator knowingly differ: `$` before a trailing newline (RE2 follows ECMA-262).
CANDIDATES: dict[str, dict[str, Any]] = {
    "minimal": MINIMAL,
    "all-set": {**MINIMAL, COUNT: 0, TAGS: ["a", "b"], CODE: "ABC", OWNER: "x"},
    "address-via-refs": {**MINIMAL, ADDRESS: {"street": "Main St 1", "city": "Bern"}},
    "address-street-only": {**MINIMAL, ADDRESS: {"street": "Main St 1"}},
    "address-without-street": {**MINIMAL, ADDRESS: {"city": "Bern"}},
    "address-empty-line-via-ref": {**MINIMAL, ADDRESS: {"street": ""}},
    "address-long-line-via-ref": {**MINIMAL, ADDRESS: {"street": "x" * 41}},
    "address-extra-member": {**MINIMAL, ADDRESS: {"street": "x", "zip": "1"}},
    "lines-empty-item-via-ref-chain": {**MINIMAL, LINES: ["a", ""]},
    "lines-wrong-item-via-ref-chain": {**MINIMAL, LINES: ["a", 1]},
    "optional-fields-cleared": {**MINIMAL, COUNT: None, TAGS: [], ADDRESS: "", CODE: None},
    "count-below-minimum": {**MINIMAL, COUNT: -1},
    "count-not-integer": {**MINIMAL, COUNT: 1.5},
    "count-integral-float": {**MINIMAL, COUNT: 2.0},
    "tags-not-unique": {**MINIMAL, TAGS: ["a", "a"]},
    "tags-not-array": {**MINIMAL, TAGS: "a"},
    "code-pattern-mismatch": {**MINIMAL, CODE: "abc"},
    "code-too-long-for-pattern": {**MINIMAL, CODE: "ABCD"},
    "title-empty": {**MINIMAL, TITLE: ""},
    "title-null": {**MINIMAL, TITLE: None},
    "title-too-long": {**MINIMAL, TITLE: "x" * 21},
    "title-missing": {LINES: ["one"]},
    "lines-missing": {TITLE: "t"},
    "lines-cleared": {**MINIMAL, LINES: []},
    "owner-cleared": {**MINIMAL, OWNER: ""},
    "unknown-field": {**MINIMAL, UNKNOWN: 1},
}


def with_defaults(compiled_type: CompiledType, data: dict[str, Any]) -> dict[str, Any]:
    defaults = {
        field_id: field.definition.default
        for field_id, field in compiled_type.fields.items()
        if field.definition.default is not msgspec.UNSET
    }
    return {**defaults, **data}


@pytest.mark.parametrize("data", list(CANDIDATES.values()), ids=list(CANDIDATES))
def test_data_schema_agrees_with_complete_for_create(data: dict[str, Any]) -> None:
    compiled_type = compiled()
    validator = Draft202012Validator(compiled_type.data_schema())
    document, reason = compiled_type.complete_for_create(data)
    assert validator.is_valid(with_defaults(compiled_type, data)) is (reason == {}), reason
    if not reason:
        assert validator.is_valid(document)


def test_the_candidates_cover_both_verdicts() -> None:
    compiled_type = compiled()
    verdicts = {not compiled_type.complete_for_create(data)[1] for data in CANDIDATES.values()}
    assert verdicts == {True, False}


@pytest.mark.parametrize(
    "template", sorted((PROJECT_ROOT / "schemas" / "templates").glob("*.json")), ids=lambda path: path.stem
)
def test_template_data_schemas_agree_with_complete_for_create(template: Path) -> None:
    document = json.loads(template.read_text())
    compiled_type = compiled(document)
    validator = Draft202012Validator(compiled_type.data_schema())
    required = [f for f in compiled_type.fields.values() if f.definition.required]
    # Nothing sent: refused by both for the required fields.
    assert not validator.is_valid(with_defaults(compiled_type, {}))
    assert set(compiled_type.complete_for_create({})[1]) == {f.definition.id for f in required}
    # Every field cleared: required ones refused, by both.
    cleared = {field_id: None for field_id in compiled_type.fields}
    assert not validator.is_valid(cleared)
    assert compiled_type.complete_for_create(cleared)[1] == {f.definition.id: "field is required" for f in required}
    # A wrong type in every field: refused by both, field by field.
    for field_id in compiled_type.fields:
        wrong = {field_id: {"not": "valid"}}
        assert field_id in compiled_type.complete_for_create(wrong)[1]
        assert any(error.path and error.path[0] == field_id for error in validator.iter_errors(wrong))


DANGLING = {"$ref": "#/$defs/missing"}
DANGLING_PROBLEM = "$ref '#/$defs/missing' names no entry of this schema's $defs"


@pytest.mark.parametrize("members", [{}, {"default": "x"}], ids=["no-default", "with-default"])
def test_a_field_schema_with_a_dangling_ref_is_refused(members: dict[str, Any]) -> None:
    # With a default the definition check itself validated the default against the schema and crashed.
    with pytest.raises(InputValidationFailure) as caught:
        validate_definition(definition(field(0, schema=DANGLING, **members)))
    assert caught.value.reason == {"fields[0].schema": DANGLING_PROBLEM}


def test_a_guard_with_a_dangling_ref_is_refused() -> None:
    def guarded(document: dict[str, Any]) -> None:
        document["workflow"] = {"guards": {"DONE": DANGLING}}

    with pytest.raises(InputValidationFailure) as caught:
        validate_definition(definition(guarded))
    assert caught.value.reason == {"workflow.guards.DONE": DANGLING_PROBLEM}


@pytest.mark.parametrize(
    ("schema", "value"),
    [({"type": "string"}, ""), ({"type": ["string", "null"]}, None), ({"type": "array"}, []), ({}, None)],
)
def test_the_data_schema_refuses_clearing_a_required_field_as_the_service_does(
    schema: dict[str, Any], value: Any
) -> None:
    document = definition(field(0, schema=schema))  # the required title, without a default
    ticket_type = compiled(document)
    field_id = document["fields"][0]["id"]
    assert ticket_type.complete_for_create({field_id: value})[1][field_id] == "field is required"
    assert not Draft202012Validator(ticket_type.data_schema()).is_valid({field_id: value})
