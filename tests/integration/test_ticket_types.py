"""The ticket-type API through the real server, body by body: list, show, the data schema, and the administrator's
create / new version / archive, with every way a definition can be refused."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from app.config import PROJECT_ROOT
from tests.support import (
    INVALID_DEFINITION,
    MALFORMED_JSON,
    TYPES,
    TenantApi,
    TenantSpec,
    create_type,
    field_ids,
    invalid,
    new_definition,
    new_field,
    timestamp,
    type_not_found,
)

TEMPLATES = PROJECT_ROOT / "schemas" / "templates"
TYPE_KEYS = {
    "id",
    "name",
    "description",
    "prefix",
    "version",
    "archived",
    "fields",
    "workflow",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
}


def wire_field(field: dict[str, Any]) -> dict[str, Any]:
    """How a submitted field definition comes back: description/required/readOnly filled in, default only if set."""
    out = {
        "id": field["id"],
        "key": field["key"],
        "name": field["name"],
        "description": field.get("description", ""),
        "required": field.get("required", False),
        "readOnly": field.get("readOnly", False),
    }
    if "default" in field:
        out["default"] = field["default"]
    out["schema"] = field["schema"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# list, show, schema


async def test_list_shows_the_seeded_templates_with_their_fields(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    response = await client.get(TYPES, headers=agent.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data"}
    by_prefix = {t["prefix"]: t for t in body["data"]}
    # A fresh tenant has its two template types and nothing else.
    assert set(by_prefix) == {"REQ", "FAC"}
    for item in body["data"]:
        assert set(item) == TYPE_KEYS
        assert item["archived"] is False
        for field in item["fields"]:
            assert {"id", "key", "name", "description", "required", "readOnly", "schema"} <= set(field)
            assert set(field) - {"id", "key", "name", "description", "required", "readOnly", "schema"} <= {"default"}
    for prefix, template in (("REQ", "request"), ("FAC", "facility-request")):
        expected = json.loads((TEMPLATES / f"{template}.json").read_text())
        item = by_prefix[prefix]
        assert uuid.UUID(item["id"])
        assert (item["name"], item["description"]) == (expected["name"], expected["description"])
        assert item["fields"] == [wire_field(f) for f in expected["fields"]]
        assert item["version"] == 1
        assert item["created_by"] == "system"
        timestamp(item["created_at"])
        timestamp(item["updated_at"])
    # "default" appears only for fields that define one.
    request_fields = {f["key"]: f for f in by_prefix["REQ"]["fields"]}
    assert request_fields["priority"]["default"] == "normal"
    assert request_fields["tags"]["default"] == []
    assert "default" not in request_fields["title"]


async def test_list_is_sorted_by_prefix(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    for prefix in ("ZULU", "AB", "MIKE"):
        await create_type(client, admin, new_definition(prefix=prefix))
    prefixes = [t["prefix"] for t in await TenantApi.agent(client, alpha).ticket_types()]
    assert prefixes == ["AB", "FAC", "MIKE", "REQ", "ZULU"]


async def test_show_returns_the_listed_type(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    listed = await agent.ticket_type("REQ")
    response = await client.get(f"{TYPES}/{listed['id']}", headers=agent.headers)
    assert response.status_code == 200, response.text
    assert response.json() == listed


@pytest.mark.parametrize("type_id", ["00000000-0000-4000-8000-00000000abcd", "not-a-uuid", "REQ"])
async def test_show_unknown_type_is_404(client: httpx.AsyncClient, alpha: TenantSpec, type_id: str) -> None:
    agent = TenantApi.agent(client, alpha)
    for path in (f"{TYPES}/{type_id}", f"{TYPES}/{type_id}/schema"):
        response = await client.get(path, headers=agent.headers)
        assert response.status_code == 404, path
        assert response.json() == type_not_found(type_id)


async def test_data_schema_accepts_valid_and_rejects_invalid_documents(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    request_type = await agent.ticket_type("REQ")
    f = field_ids(request_type)
    response = await client.get(f"{TYPES}/{request_type['id']}/schema", headers=agent.headers)
    assert response.status_code == 200, response.text
    schema = response.json()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == [f["title"]]
    assert set(schema["properties"]) == set(f.values())
    assert schema["properties"][f["source"]]["anyOf"][0]["readOnly"] is True
    validator = Draft202012Validator(schema)

    valid = [
        {f["title"]: "Printer on fire"},
        {
            f["title"]: "Printer on fire",
            f["description"]: "",  # clearing values are valid for optional fields
            f["priority"]: "urgent",
            f["requester_email"]: "ada@example.com",
            f["due_date"]: None,
            f["tags"]: ["hardware", "fire"],
            f["counter"]: 3,
        },
    ]
    invalid_documents = [
        {},  # the required title is missing
        {f["title"]: 5},
        {f["title"]: "x" * 201},
        {f["title"]: "ok", f["priority"]: "whenever"},
        {f["title"]: "ok", f["tags"]: ["dup", "dup"]},
        {f["title"]: "ok", f["due_date"]: "tomorrow"},
        {f["title"]: "ok", str(uuid.uuid4()): "unknown field"},
    ]
    for document in valid:
        assert validator.is_valid(document), document
    for document in invalid_documents:
        assert not validator.is_valid(document), document

    # The schema and the server agree.
    accepted = await agent.create(request_type["id"], valid[1])
    assert accepted.status_code == 201, accepted.text
    for document in invalid_documents:
        refused = await agent.create(request_type["id"], document)
        assert refused.status_code == 400, (document, refused.text)


async def test_data_schema_of_a_type_with_in_document_refs(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    short = {"$defs": {"short": {"type": "string", "maxLength": 3}}, "$ref": "#/$defs/short"}
    required = new_field("code", short, required=True)
    optional = new_field("alias", short)
    created = await create_type(client, admin, new_definition(required, optional))
    response = await client.get(f"{TYPES}/{created['id']}/schema", headers=admin.headers)
    assert response.status_code == 200, response.text
    validator = Draft202012Validator(response.json())
    assert validator.is_valid({required["id"]: "abc", optional["id"]: "xyz"})
    assert validator.is_valid({required["id"]: "abc", optional["id"]: None})
    assert not validator.is_valid({required["id"]: "abcd"})
    assert not validator.is_valid({required["id"]: "abc", optional["id"]: "wxyz"})


async def test_data_schema_leaves_ref_keys_inside_values_alone(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    field = new_field("pointer", {"const": {"$ref": "#/elsewhere"}}, required=True)
    created = await create_type(client, admin, new_definition(field))
    document = {field["id"]: {"$ref": "#/elsewhere"}}
    accepted = await admin.create(created["id"], document)
    assert accepted.status_code == 201, accepted.text
    response = await client.get(f"{TYPES}/{created['id']}/schema", headers=admin.headers)
    assert response.status_code == 200
    assert Draft202012Validator(response.json()).is_valid(document)


# ---------------------------------------------------------------------------------------------------------------
# create, new version, archive


async def test_admin_creates_a_type(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha, subject="admin-7")
    fields = (
        new_field("title", {"type": "string", "maxLength": 100}, required=True, description="Short summary"),
        new_field("stage", {"enum": ["new", "done"]}, default="new"),
        new_field("origin", {"type": "string"}, readOnly=True),
        new_field("maybe", {"type": ["string", "null"]}, default=None),
    )
    definition = new_definition(*fields, name="Probe create")
    response = await client.post(TYPES, json=definition, headers=admin.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == TYPE_KEYS
    assert uuid.UUID(body["id"])
    created_at = timestamp(body["created_at"])
    assert timestamp(body["updated_at"]) == created_at
    assert body == {
        "id": body["id"],
        "name": "Probe create",
        "description": "Probe create type of a test",
        "prefix": definition["prefix"],
        "version": 1,
        "archived": False,
        "fields": [wire_field(f) for f in fields],
        "workflow": None,
        "created_at": body["created_at"],
        "created_by": "admin-7",
        "updated_at": body["updated_at"],
        "updated_by": "admin-7",
    }
    # A null default is a real default, distinct from "no default".
    assert body["fields"][3]["default"] is None
    assert "default" not in body["fields"][0]

    shown = await client.get(f"{TYPES}/{body['id']}", headers=admin.headers)
    assert (shown.status_code, shown.json()) == (200, body)
    listed = await TenantApi.agent(client, alpha).ticket_types()
    assert body in listed


async def test_put_makes_a_new_version_and_keeps_field_ids(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    definition = new_definition()
    created = await create_type(client, admin, definition)
    definition["name"] = "Renamed"
    definition["fields"][0]["name"] = "Headline"
    definition["fields"].append(new_field("extra", {"type": "integer"}))
    editor = TenantApi.admin(client, alpha, subject="admin-editor")
    response = await client.put(f"{TYPES}/{created['id']}", json=definition, headers=editor.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 2
    assert body["id"] == created["id"]
    assert body["name"] == "Renamed"
    assert [f["id"] for f in body["fields"]] == [f["id"] for f in definition["fields"]]
    assert body["fields"][0]["id"] == created["fields"][0]["id"]
    assert body["fields"][0]["name"] == "Headline"
    assert (body["created_by"], body["updated_by"]) == (created["created_by"], "admin-editor")
    assert body["created_at"] == created["created_at"]
    assert timestamp(body["updated_at"]) >= timestamp(created["updated_at"])
    shown = await client.get(f"{TYPES}/{created['id']}", headers=admin.headers)
    assert shown.json() == body

    again = await client.put(f"{TYPES}/{created['id']}", json=definition, headers=admin.headers)
    assert again.status_code == 200
    assert again.json()["version"] == 3


async def test_put_refuses_a_new_key_under_an_existing_field_uuid(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    definition = new_definition(new_field("title", {"type": "string"}), new_field("summary", {"type": "string"}))
    created = await create_type(client, admin, definition)
    field_id = definition["fields"][1]["id"]
    definition["fields"][1]["key"] = "abstract"
    response = await client.put(f"{TYPES}/{created['id']}", json=definition, headers=admin.headers)
    assert response.status_code == 400
    assert response.json() == invalid(
        INVALID_DEFINITION,
        {"fields[1].id": f"{field_id} was field 'summary'; a field UUID never changes meaning (use a new UUID)"},
    )


async def test_put_refuses_a_key_change_even_after_the_field_was_removed(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    title, old = new_field("title", {"type": "string"}), new_field("old", {"type": "string"})
    created = await create_type(client, admin, new_definition(title, old))
    without = new_definition(title, prefix=created["prefix"])
    response = await client.put(f"{TYPES}/{created['id']}", json=without, headers=admin.headers)
    assert response.status_code == 200, response.text
    revived = new_definition(title, {**old, "key": "reborn"}, prefix=created["prefix"])
    response = await client.put(f"{TYPES}/{created['id']}", json=revived, headers=admin.headers)
    assert response.status_code == 400
    assert set(response.json()["validationResult"]["reason"]) == {"fields[1].id"}


async def test_put_refuses_a_prefix_change(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    definition = new_definition()
    created = await create_type(client, admin, definition)
    response = await client.put(
        f"{TYPES}/{created['id']}", json={**definition, "prefix": "OTHER"}, headers=admin.headers
    )
    assert response.status_code == 400
    assert response.json() == invalid(
        INVALID_DEFINITION,
        {"prefix": f"cannot change from {created['prefix']!r}: display IDs of existing tickets use it"},
    )


async def test_put_and_delete_of_an_unknown_type_are_404(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    type_id = str(uuid.uuid4())
    put = await client.put(f"{TYPES}/{type_id}", json=new_definition(), headers=admin.headers)
    assert (put.status_code, put.json()) == (404, type_not_found(type_id))
    deleted = await client.delete(f"{TYPES}/{type_id}", headers=admin.headers)
    assert (deleted.status_code, deleted.json()) == (404, type_not_found(type_id))


async def test_delete_archives_the_type(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    definition = new_definition()
    created = await create_type(client, admin, definition)
    title = definition["fields"][0]["id"]
    before = await agent.create(created["id"], {title: "made before the archive"})
    assert before.status_code == 201

    response = await client.delete(f"{TYPES}/{created['id']}", headers=admin.headers)
    assert response.status_code == 200, response.text
    archived = response.json()
    assert archived["archived"] is True
    assert archived["version"] == created["version"]
    assert archived["fields"] == created["fields"]

    default_list = await client.get(TYPES, headers=agent.headers)
    assert created["id"] not in {t["id"] for t in default_list.json()["data"]}
    full_list = await client.get(TYPES, params={"include_archived": "true"}, headers=agent.headers)
    assert archived in full_list.json()["data"]
    shown = await client.get(f"{TYPES}/{created['id']}", headers=agent.headers)
    assert (shown.status_code, shown.json()["archived"]) == (200, True)

    refused = await agent.create(created["id"], {title: "after the archive"})
    assert refused.status_code == 400
    assert refused.json() == invalid(
        "Invalid ticket type", {"ticketTypeId": "no active ticket type with this id in the tenant"}
    )
    # Existing tickets stay readable.
    old = await agent.get(before.json()["objectId"])
    assert old.status_code == 200

    # An archived type cannot be changed, archiving again is harmless, and its prefix is never reused.
    changed = await client.put(f"{TYPES}/{created['id']}", json=definition, headers=admin.headers)
    assert changed.status_code == 400
    assert changed.json() == invalid("Ticket type is archived", {"id": "an archived ticket type cannot be changed"})
    twice = await client.delete(f"{TYPES}/{created['id']}", headers=admin.headers)
    assert (twice.status_code, twice.json()["archived"]) == (200, True)
    reuse = await client.post(TYPES, json=new_definition(prefix=created["prefix"]), headers=admin.headers)
    assert reuse.status_code == 400
    assert set(reuse.json()["validationResult"]["reason"]) == {"prefix"}


# ---------------------------------------------------------------------------------------------------------------
# refused definitions


def _bad_prefix(prefix: str) -> Callable[[], dict[str, Any]]:
    return lambda: new_definition(prefix=prefix)


def _with_schema(schema: dict[str, Any], **extra: Any) -> Callable[[], dict[str, Any]]:
    return lambda: new_definition(new_field("value", schema, **extra))


def _duplicate_id() -> dict[str, Any]:
    first = new_field("first", {"type": "string"})
    return new_definition(first, {**new_field("second", {"type": "string"}), "id": first["id"]})


def _duplicate_key() -> dict[str, Any]:
    return new_definition(new_field("same", {"type": "string"}), new_field("same", {"type": "integer"}))


def _too_many_fields() -> dict[str, Any]:
    return new_definition(*(new_field(f"f{i}", {"type": "string"}) for i in range(201)))


def _too_large() -> dict[str, Any]:
    # 150 fields with 1,900-character descriptions: about 300 KB, under the 1 MiB body limit.
    return new_definition(*(new_field(f"f{i}", {"type": "string"}, description="d" * 1900) for i in range(150)))


BAD_DEFINITIONS: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "lowercase prefix": (_bad_prefix("abc"), "prefix", "'abc' does not match '^[A-Z]{2,5}$'"),
    "six-letter prefix": (_bad_prefix("ABCDEF"), "prefix", "'ABCDEF' does not match '^[A-Z]{2,5}$'"),
    "prefix taken in the tenant": (
        _bad_prefix("REQ"),
        "prefix",
        "'REQ' is already used by another ticket type of this tenant (archived types keep theirs)",
    ),
    "duplicate field id": (_duplicate_id, "fields[1].id", "is used by another field"),
    "duplicate key": (_duplicate_key, "fields[1].key", "'same' is used by another field"),
    "invalid JSON Schema": (
        _with_schema({"type": "strang"}),
        "fields[0].schema",
        "not a valid JSON Schema 2020-12: ",
    ),
    "negative minLength": (_with_schema({"minLength": -1}), "fields[0].schema", "not a valid JSON Schema 2020-12"),
    "remote $ref": (
        _with_schema({"$ref": "https://example.com/schemas/evil.json"}),
        "fields[0].schema",
        "$ref 'https://example.com/schemas/evil.json' is not supported: "
        "only references to this schema's $defs (#/$defs/name)",
    ),
    "nested remote $ref": (
        _with_schema({"type": "object", "properties": {"x": {"$ref": "http://169.254.169.254/latest"}}}),
        "fields[0].schema",
        "is not supported: only references to this schema's $defs",
    ),
    "file $ref": (
        _with_schema({"$ref": "file:///etc/passwd"}),
        "fields[0].schema",
        "$ref 'file:///etc/passwd' is not supported",
    ),
    "relative $ref": (
        _with_schema({"$ref": "other.json"}),
        "fields[0].schema",
        "is not supported: only references to this schema's $defs",
    ),
    "backreference": (
        _with_schema({"type": "string", "pattern": "^(a+)\\1$"}),
        "fields[0].schema",
        "(RE2: no backreferences or look-around)",
    ),
    "look-ahead": (
        _with_schema({"type": "string", "pattern": "^(?=a)"}),
        "fields[0].schema",
        "(RE2: no backreferences or look-around)",
    ),
    "patternProperties": (
        _with_schema({"type": "object", "patternProperties": {"^x": {"type": "string"}}}),
        "fields[0].schema",
        "patternProperties is not supported (its regexes would not run on RE2)",
    ),
    "$id": (_with_schema({"$id": "https://example.com/x"}), "fields[0].schema", "$id is not supported"),
    "default not matching the schema": (
        _with_schema({"type": "string"}, default=5),
        "fields[0].default",
        "does not satisfy the field schema: 5 is not of type 'string'",
    ),
    "too many fields": (_too_many_fields, "fields", "is too long"),
    "over 256 KiB": (_too_large, "definition", "larger than 262144 bytes"),
    "bad key": (
        lambda: new_definition({**new_field("value", {"type": "string"}), "key": "Not A Key"}),
        "fields[0].key",
        "'Not A Key' does not match '^[a-z][a-z0-9_]{0,63}$'",
    ),
    "no fields": (lambda: {**new_definition(), "fields": []}, "fields", "should be non-empty"),
}


@pytest.mark.parametrize("case", BAD_DEFINITIONS.values(), ids=BAD_DEFINITIONS.keys())
async def test_bad_definition_is_refused_naming_the_field(
    client: httpx.AsyncClient, alpha: TenantSpec, case: tuple[Callable[[], dict[str, Any]], str, str]
) -> None:
    build, key, message = case
    admin = TenantApi.admin(client, alpha)
    definition = build()
    response = await client.post(TYPES, json=definition, headers=admin.headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body == invalid(INVALID_DEFINITION, body["validationResult"]["reason"])
    reason = body["validationResult"]["reason"]
    assert set(reason) == {key}
    assert message in reason[key]

    # The same definition is refused as a new version of an existing type too (with that type's prefix, unless
    # the prefix is what is wrong).
    existing = await create_type(client, admin, new_definition())
    if key != "prefix":
        definition["prefix"] = existing["prefix"]
        replaced = await client.put(f"{TYPES}/{existing['id']}", json=definition, headers=admin.headers)
        assert replaced.status_code == 400, replaced.text
        assert set(replaced.json()["validationResult"]["reason"]) == {key}


async def test_duplicate_id_error_names_the_id(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    definition = _duplicate_id()
    response = await client.post(TYPES, json=definition, headers=TenantApi.admin(client, alpha).headers)
    duplicate = definition["fields"][0]["id"]
    assert response.json() == invalid(INVALID_DEFINITION, {"fields[1].id": f"{duplicate} is used by another field"})


async def test_unknown_member_of_a_definition_is_refused(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    definition = new_definition()
    definition["fields"][0]["colour"] = "red"
    response = await client.post(TYPES, json=definition, headers=TenantApi.admin(client, alpha).headers)
    assert response.status_code == 400
    assert response.json() == invalid(
        "The request failed validation", {"fields[0]": "Object contains unknown field `colour`"}
    )


@pytest.mark.parametrize(
    ("member", "value", "expected"),
    [("readOnly", 0, "Expected `bool`, got `int`"), ("required", "true", "Expected `bool`, got `str`")],
)
async def test_a_value_of_another_json_type_is_refused_not_coerced(
    client: httpx.AsyncClient, alpha: TenantSpec, member: str, value: Any, expected: str
) -> None:
    # The document says boolean: 0 and "true" are not booleans (a lax decoder once took them for false and true).
    definition = new_definition()
    definition["fields"][0][member] = value
    response = await client.post(TYPES, json=definition, headers=TenantApi.admin(client, alpha).headers)
    assert response.status_code == 400, response.text
    assert response.json() == invalid("The request failed validation", {f"fields[0].{member}": expected})


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_malformed_json_definition(client: httpx.AsyncClient, alpha: TenantSpec, method: str) -> None:
    admin = TenantApi.admin(client, alpha)
    path = TYPES if method == "POST" else f"{TYPES}/{(await admin.ticket_type('REQ'))['id']}"
    response = await client.request(
        method, path, content=b'{"name": "x", "prefix":', headers={**admin.headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == MALFORMED_JSON


async def test_hostile_pattern_runs_in_linear_time(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    # Catastrophic backtracking on Python's re; linear on RE2, so it is accepted.
    field = new_field("code", {"type": "string", "pattern": "(a+)+$"})
    created = await create_type(client, admin, new_definition(field))
    assert created["fields"][0]["schema"] == {"type": "string", "pattern": "(a+)+$"}
    hostile = "a" * 50_000 + "b"

    started = time.perf_counter()
    refused = await agent.create(created["id"], {field["id"]: hostile})
    assert time.perf_counter() - started < 2
    assert refused.status_code == 400
    assert set(refused.json()["validationResult"]["reason"]) == {field["id"]}

    ok = await agent.create(created["id"], {field["id"]: "aaaa"})
    assert ok.status_code == 201, ok.text
    started = time.perf_counter()
    update = await agent.update(
        ok.json()["objectId"], {"etag": ok.json()["etag"], "ticketUpdate": {field["id"]: hostile}}
    )
    assert time.perf_counter() - started < 2
    assert update.status_code == 400
    assert set(update.json()["validationResult"]["reason"]) == {field["id"]}

    live = await client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})


async def test_dollar_ends_the_text_as_in_ecma_262(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    # Python's re lets `$` match before a trailing newline; JSON Schema (ECMA-262) and RE2 do not.
    admin = TenantApi.admin(client, alpha)
    field = new_field("code", {"type": "string", "pattern": "^[a-z]+$"})
    created = await create_type(client, admin, new_definition(field))
    response = await admin.create(created["id"], {field["id"]: "abc\n"})
    assert response.status_code == 400
    assert set(response.json()["validationResult"]["reason"]) == {field["id"]}


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
        {"$defs": {"node": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "$ref": "#/$defs/node"},
    ],
    ids=["self loop", "two-step loop", "recursive tree"],
)
async def test_recursive_ref_is_refused(client: httpx.AsyncClient, alpha: TenantSpec, schema: dict[str, Any]) -> None:
    admin = TenantApi.admin(client, alpha)
    response = await client.post(TYPES, json=new_definition(new_field("loop", schema)), headers=admin.headers)
    assert response.status_code == 400, response.text
    assert response.json()["validationResult"]["reason"] == {"fields[0].schema": "recursive $ref is not supported"}


async def test_deeply_nested_default_is_refused(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    field = new_field("tree", {"type": "array"}, default=deep)
    response = await client.post(TYPES, json=new_definition(field), headers=admin.headers)
    assert response.status_code == 400, response.text
    assert response.json()["validationResult"]["reason"] == {"fields[0].default": "nests deeper than 32 levels"}


# ---------------------------------------------------------------------------------------------------------------
# changing a type while tickets exist


async def test_new_version_leaves_existing_tickets_alone(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    agent = TenantApi.agent(client, alpha)
    title = new_field("title", {"type": "string", "maxLength": 50}, required=True)
    legacy = new_field("legacy", {"type": "string"})
    definition = new_definition(title, legacy)
    created = await create_type(client, admin, definition)
    made = await agent.create(created["id"], {title["id"]: "v1 ticket", legacy["id"]: "old value"})
    assert made.status_code == 201, made.text
    object_id = made.json()["objectId"]
    assert object_id.startswith(f"{created['prefix']}-")
    before = (await agent.get(object_id)).json()
    assert before["ticket_type_version"] == 1

    fresh = new_field("fresh", {"type": "integer", "minimum": 0})
    replaced = await client.put(
        f"{TYPES}/{created['id']}", json=new_definition(title, fresh, prefix=created["prefix"]), headers=admin.headers
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2

    after = await agent.get(object_id)
    assert after.status_code == 200
    assert after.json() == before  # data, etag and version untouched by the new type version

    removed = await agent.update(object_id, {"etag": before["etag"], "ticketUpdate": {legacy["id"]: "changed"}})
    assert removed.status_code == 400
    assert removed.json() == invalid(
        "Ticket update failed validation", {legacy["id"]: "unknown field for this ticket type"}
    )

    updated = await agent.update(object_id, {"etag": before["etag"], "ticketUpdate": {fresh["id"]: 7}})
    assert updated.status_code == 200, updated.text
    now = (await agent.get(object_id)).json()
    assert now["data"] == {title["id"]: "v1 ticket", legacy["id"]: "old value", fresh["id"]: 7}
    assert now["ticket_type_version"] == 2

    # New tickets follow version 2: the removed field is unknown.
    refused = await agent.create(created["id"], {title["id"]: "v2", legacy["id"]: "x"})
    assert refused.status_code == 400
    assert set(refused.json()["validationResult"]["reason"]) == {legacy["id"]}
