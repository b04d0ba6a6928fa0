"""The parts of the served OpenAPI document that generated clients and Schemathesis rely on, pinned so they cannot
silently regress: what the update and status-change bodies require, the contract's query parameters, bodies that
refuse unknown members, operation ids, and the error responses of every operation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import API

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
OPERATION_IDS = {
    ("get", "/health/live"): "checkLiveness",
    ("get", "/health/ready"): "checkReadiness",
    ("get", f"{API}/me"): "showMe",
    ("get", f"{API}/ticket-type"): "listTicketTypes",
    ("post", f"{API}/ticket-type"): "createTicketType",
    ("get", f"{API}/ticket-type/{{type_id}}"): "showTicketType",
    ("put", f"{API}/ticket-type/{{type_id}}"): "replaceTicketType",
    ("delete", f"{API}/ticket-type/{{type_id}}"): "archiveTicketType",
    ("get", f"{API}/ticket-type/{{type_id}}/schema"): "showTicketDataSchema",
    ("get", f"{API}/ticket"): "listTickets",
    ("post", f"{API}/ticket"): "createTicket",
    ("get", f"{API}/ticket/{{object_id}}"): "showTicket",
    ("patch", f"{API}/ticket/{{object_id}}/update"): "updateTicket",
    ("patch", f"{API}/ticket/{{object_id}}/status"): "changeTicketStatus",
    ("get", f"{API}/ticket/{{object_id}}/history"): "listTicketHistory",
    ("get", f"{API}/ticket-state"): "listTicketStates",
    ("post", f"{API}/ticket-state"): "createTicketState",
    ("get", f"{API}/ticket-state/{{state_id}}"): "showTicketState",
    ("put", f"{API}/ticket-state/{{state_id}}"): "updateTicketState",
    ("delete", f"{API}/ticket-state/{{state_id}}"): "deleteTicketState",
    ("post", f"{API}/ticket/{{object_id}}/attachments"): "uploadAttachment",
    ("get", f"{API}/ticket/{{object_id}}/attachments"): "listAttachments",
    ("get", f"{API}/attachments/{{attachment_id}}"): "downloadAttachment",
    ("delete", f"{API}/attachments/{{attachment_id}}"): "deleteAttachment",
}
# Beyond the 400, 401, 404 and 503 every API operation may answer.
MORE_ERRORS = {
    "createTicket": {"413", "422"},
    "updateTicket": {"413", "422"},
    "changeTicketStatus": {"413", "422"},
    "createTicketType": {"413"},
    "replaceTicketType": {"413"},
    "createTicketState": {"413"},
    "updateTicketState": {"413"},
    "deleteTicketState": {"409"},
    "uploadAttachment": {"413"},
    "downloadAttachment": {"416"},
}
REQUEST_BODIES = {
    "createTicket": "CreateTicketRequest",
    "updateTicket": "UpdateTicketRequest",
    "changeTicketStatus": "ChangeStatusRequest",
    "createTicketType": "TicketTypeDefinition",
    "replaceTicketType": "TicketTypeDefinition",
    "createTicketState": "StateIn",
    "updateTicketState": "StateUpdate",
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {operation["operationId"]: operation for item in document["paths"].values() for operation in item.values()}


def parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in operation["parameters"] if p["name"] == name)


def test_every_operation_has_its_explicit_operation_id(document: dict[str, Any]) -> None:
    found = {
        (method, path): op["operationId"] for path, item in document["paths"].items() for method, op in item.items()
    }
    assert found == OPERATION_IDS


def test_every_api_operation_documents_its_error_responses_with_the_envelope(document: dict[str, Any]) -> None:
    for operation_id, operation in operations(document).items():
        errors = {status for status in operation["responses"] if status >= "400"}
        if operation_id in ("checkLiveness", "checkReadiness"):
            assert errors == ({"503"} if operation_id == "checkReadiness" else set())
            continue
        assert errors == {"400", "401", "404", "503"} | MORE_ERRORS.get(operation_id, set()), operation_id
        for status in errors:
            assert operation["responses"][status]["content"] == ERROR_BODY, (operation_id, status)
    envelope = document["components"]["schemas"]["ErrorBody"]
    assert envelope["required"] == ["error", "message"]
    assert envelope["properties"]["error"] == {"type": "boolean", "enum": [True]}
    # A member that does not apply is left out, never null.
    assert all("anyOf" not in member for member in envelope["properties"].values())


def test_the_update_body_requires_a_non_empty_etag_and_changes(document: dict[str, Any]) -> None:
    update = document["components"]["schemas"]["UpdateTicketRequest"]
    assert update["required"] == ["etag", "ticketUpdate"]
    assert update["additionalProperties"] is False
    etag, changes = update["properties"]["etag"], update["properties"]["ticketUpdate"]
    assert (etag["type"], etag["minLength"]) == ("string", 1)
    assert (changes["type"], changes["minProperties"]) == ("object", 1)
    assert changes["propertyNames"] == {"pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
    status = document["components"]["schemas"]["ChangeStatusRequest"]
    assert status["required"] == ["etag", "state"]
    assert status["properties"]["pendingUntil"]["anyOf"][0]["format"] == "date-time"


@pytest.mark.parametrize("operation_id", ["createTicket", "updateTicket"])
def test_type_and_module_are_required_with_the_values_the_server_accepts(
    document: dict[str, Any], operation_id: str
) -> None:
    operation = operations(document)[operation_id]
    assert parameter(operation, "type")["required"] is True
    assert parameter(operation, "type")["schema"] == {"type": "string", "enum": ["template", "agent", "user"]}
    assert parameter(operation, "module")["required"] is True
    assert parameter(operation, "module")["schema"] == {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"}
    key = parameter(operation, "Idempotency-Key")
    assert (key["required"], key["schema"]["minLength"], key["schema"]["maxLength"]) == (False, 1, 255)


def test_no_parameter_is_documented_as_nullable(document: dict[str, Any]) -> None:
    for operation_id, operation in operations(document).items():
        for documented in operation.get("parameters", []):
            assert "oneOf" not in documented["schema"] and "anyOf" not in documented["schema"], (
                operation_id,
                documented,
            )


def test_request_bodies_refuse_unknown_members(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for operation_id, operation in operations(document).items():
        if "requestBody" in operation and operation_id != "uploadAttachment":
            reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert reference == f"#/components/schemas/{REQUEST_BODIES.pop(operation_id)}"
    assert not REQUEST_BODIES, f"operations without their request body: {REQUEST_BODIES}"
    for name in ("CreateTicketRequest", "UpdateTicketRequest", "ChangeStatusRequest", "TicketTypeDefinition"):
        assert schemas[name]["additionalProperties"] is False, name
    for name in ("StateIn", "StateUpdate", "FieldDefinition", "Workflow"):
        assert schemas[name]["additionalProperties"] is False, name


def test_constraints_the_server_enforces_are_declared(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    definition = schemas["TicketTypeDefinition"]["properties"]
    assert (definition["name"]["minLength"], definition["name"]["maxLength"]) == (1, 100)
    assert definition["prefix"]["pattern"] == "^[A-Z]{2,5}$"
    assert (definition["fields"]["minItems"], definition["fields"]["maxItems"]) == (1, 200)
    assert definition["fields"]["items"] == {"$ref": "#/components/schemas/FieldDefinition"}
    assert schemas["FieldDefinition"]["properties"]["key"]["pattern"] == "^[a-z][a-z0-9_]{0,63}$"
    state_name = schemas["StateIn"]["properties"]["name"]
    assert (state_name["minLength"], state_name["maxLength"]) == (1, 100)
    assert schemas["StateIn"]["properties"]["state_type"]["enum"] == [
        "closed",
        "merged",
        "new",
        "open",
        "pending close",
        "pending reminder",
        "removed",
    ]
    assert schemas["TicketOut"]["properties"]["created_at"] == {"type": "string", "format": "date-time"}


def test_an_upload_is_one_file_in_a_form_and_a_download_any_type_in_ranges(document: dict[str, Any]) -> None:
    upload = operations(document)["uploadAttachment"]
    assert upload["requestBody"]["required"] is True
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert upload["requestBody"]["content"]["multipart/form-data"]["schema"] == {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary", "minLength": 1}},
        "required": ["file"],
        "additionalProperties": False,
    }
    assert upload["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AttachmentOut"
    }
    download = operations(document)["downloadAttachment"]
    assert {status: list(response.get("content", {})) for status, response in download["responses"].items()} == {
        "200": ["*/*"],
        "206": ["*/*"],
        "304": [],
        "400": ["application/json"],
        "401": ["application/json"],
        "404": ["application/json"],
        "416": ["application/json"],
        "503": ["application/json"],
    }
    assert {p["name"] for p in download["parameters"]} >= {"Range", "If-Range", "If-None-Match"}
    show = operations(document)["showTicket"]
    assert parameter(show, "include")["schema"] == {"type": "string", "pattern": "^(attachments)(,(attachments))*$"}
    inline = document["components"]["schemas"]["InlineAttachment"]
    assert inline["required"] == ["filename", "content"]
    assert inline["additionalProperties"] is False
    create = document["components"]["schemas"]["CreateTicketRequest"]["properties"]["attachments"]
    assert create == {"type": "array", "items": {"$ref": "#/components/schemas/InlineAttachment"}, "maxItems": 20}
