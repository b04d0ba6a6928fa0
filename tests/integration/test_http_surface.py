"""Errors the framework produces, health probes and the OpenAPI document, through the real server."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from app.errors import EXCEPTION_HANDLERS
from app.observability import RequestContextMiddleware
from tests.support import ADMIN_SCOPE, API, ME, TenantApi, TenantSpec, auth_headers, token


async def test_unknown_route_is_a_404_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/ticketing/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"error": True, "code": "NOT_FOUND", "message": "Not found", "status": 404}


async def test_wrong_method_is_a_405_envelope_with_allow(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    response = await client.delete(ME, headers=auth_headers(alpha, token(alpha)))
    assert response.status_code == 405
    assert response.json() == {
        "error": True,
        "code": "METHOD_NOT_ALLOWED",
        "message": "Method not allowed",
        "status": 405,
    }
    assert "GET" in response.headers["allow"]


async def test_oversized_body_is_refused_before_routing(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    response = await client.post(ME, headers=auth_headers(alpha, token(alpha)), content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == {
        "error": True,
        "code": "PAYLOAD_TOO_LARGE",
        "message": "Request body is larger than the limit of 1048576 bytes",
        "status": 413,
    }


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})


async def test_request_id_is_echoed_when_sane_and_replaced_when_not(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"x-request-id": "trace-123.abc"})
    replaced = await client.get("/health/live", headers={"x-request-id": "bad id\twith spaces"})
    assert echoed.headers["x-request-id"] == "trace-123.abc"
    assert len(replaced.headers["x-request-id"]) == 32


async def test_openapi_documents_routes_headers_security_and_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    me = document["paths"][ME]["get"]
    header_names = {p["name"] for p in me["parameters"] if p["in"] == "header"}
    assert header_names == {"x-tenantid", "realmname", "issupportrequest"}
    assert me["security"] == [{"BearerToken": []}]
    assert {"200", "400", "401", "404"} <= set(me["responses"])
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert "/health/ready" in document["paths"]
    browsable = await client.get("/schema")
    assert browsable.status_code == 200
    assert "text/html" in browsable.headers["content-type"]


SUPPORT_FLAG = (
    "true or false (in any letter case): true marks a support request, honoured only for tokens with the tenant's "
    "support role"
)
TENANT_HEADER_PARAMETERS = [
    {
        "name": "x-tenantid",
        "in": "header",
        "schema": {
            "type": "string",
            "format": "uuid",
            "description": "UUID of the tenant; must equal the token's tenant claim",
        },
        "description": "UUID of the tenant; must equal the token's tenant claim",
        "required": True,
        "deprecated": False,
    },
    {
        "name": "realmname",
        "in": "header",
        "schema": {"type": "string", "minLength": 1, "description": "Name of the realm that issued the token"},
        "description": "Name of the realm that issued the token",
        "required": True,
        "deprecated": False,
    },
    {
        "name": "issupportrequest",
        "in": "header",
        # What the authenticator accepts: an empty value is refused, not read as false.
        "schema": {
            "type": "string",
            "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$",
            "description": SUPPORT_FLAG,
            "default": "false",
        },
        "description": SUPPORT_FLAG,
        "required": False,
        "deprecated": False,
    },
]


async def test_every_api_operation_documents_the_tenant_headers_first(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        # Sign-in and accepting an invitation need no token.
        if path.startswith("/api/v2/")
        and path not in ("/api/v2/ticketing/auth/login", "/api/v2/ticketing/auth/invitation")
        for method, operation in item.items()
    ]
    assert len(operations) == 42
    for path, method, operation in operations:
        assert operation["parameters"][:3] == TENANT_HEADER_PARAMETERS, (method, path)
        own = operation["parameters"][3:]
        assert not any(
            parameter["in"] == "header" and parameter["name"] in {"x-tenantid", "realmname"} for parameter in own
        )


async def test_unexpected_failure_is_a_generic_500_with_the_detail_only_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret database detail")

    app = RequestContextMiddleware(Litestar([boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None))
    async with AsyncTestClient(app=app) as test_client:  # type: ignore[arg-type]
        with caplog.at_level(logging.ERROR, logger="app.errors"):
            response = await test_client.get("/boom")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "error": True,
        "code": "INTERNAL_SERVER_ERROR",
        "message": f"Internal server error (request id {request_id})",
        "status": 500,
    }
    assert "secret" not in response.text
    [record] = [r for r in caplog.records if r.name == "app.errors"]
    assert record.exc_info is not None and "secret database detail" in str(record.exc_info[1])


@pytest.mark.parametrize("with_token", [True, False], ids=["valid-token", "no-token"])
async def test_options_answers_204_with_allow_on_api_routes(
    client: httpx.AsyncClient, alpha: TenantSpec, with_token: bool
) -> None:
    headers = auth_headers(alpha, token(alpha) if with_token else None)
    response = await client.options(ME, headers=headers)
    assert response.status_code == 204, response.text
    assert set(response.headers["allow"].split(", ")) == {"GET", "OPTIONS"}
    # A CORS preflight carries the real request's query string (seed 002's update URL has ?type=&module=).
    update = await client.options(
        f"{API}/ticket/REQ-0001/update", params={"type": "template", "module": "ticketing"}, headers=headers
    )
    assert update.status_code == 204
    assert set(update.headers["allow"].split(", ")) == {"PATCH", "OPTIONS"}
    # Routes with several methods name them all (Litestar alone named only the first one registered).
    tickets = await client.options(f"{API}/ticket", headers=headers)
    assert set(tickets.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}
    state = await client.options(f"{API}/ticket-state/{uuid.uuid4()}", headers=headers)
    assert set(state.headers["allow"].split(", ")) == {"GET", "PUT", "DELETE", "OPTIONS"}


NOT_VALID_JSON = {
    "error": True,
    "code": "INPUT_VALIDATION_FAILURE",
    "message": "Request body is not valid JSON",
    "status": 400,
    "validationResult": {"reason": {"body": "not valid JSON"}},
}


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/ticket?type=template&module=ticketing"),
        ("PATCH", "/ticket/REQ-0001/update?type=template&module=ticketing"),
        ("PATCH", "/ticket/REQ-0001/status"),
        ("POST", "/ticket-state"),
        ("POST", "/ticket-type"),
    ],
)
async def test_a_body_that_is_not_utf8_is_400_not_valid_json(
    client: httpx.AsyncClient, alpha: TenantSpec, method: str, path: str, content_type: str | None
) -> None:
    # curl --data-binary sends application/x-www-form-urlencoded unless told otherwise.
    admin = token(alpha, roles=alpha.roles["admin"], scope=ADMIN_SCOPE)
    headers = auth_headers(alpha, admin)
    if content_type is not None:
        headers["content-type"] = content_type
    body = b'{"name": "\xff", "state_type": "open", "etag": "x", "ticketUpdate": {"a": "\xff"}}'
    response = await client.request(method, f"{API}{path}", headers=headers, content=body)
    assert response.status_code == 400, response.text
    assert response.json() == NOT_VALID_JSON


async def test_unknown_query_parameters_are_400_naming_them(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    headers = auth_headers(alpha, token(alpha))
    # A filter that does not exist would otherwise look like it worked: every ticket comes back.
    response = await client.get(
        f"{API}/ticket", params={"search": "printer", "status": "open", "page": "1"}, headers=headers
    )
    assert response.status_code == 400
    accepted = (
        "unknown query parameter; this route accepts: assignee, created_after, created_before, created_by, order, "
        "page, per_page, q, sort, state, ticket_type_id, updated_after, updated_before, data.<name>"
    )
    assert response.json() == {
        "error": True,
        "code": "INPUT_VALIDATION_FAILURE",
        "message": "Invalid query parameters",
        "status": 400,
        "validationResult": {"reason": {"search": accepted, "status": accepted}},
    }
    # Every parameter the route declares, under its public name, and the field filters it takes by prefix.
    request_type = await TenantApi.agent(client, alpha).ticket_type("REQ")
    counter = next(field["id"] for field in request_type["fields"] if field["key"] == "counter")
    known = {"page": "1", "per_page": "5", "sort": "updated_at", "order": "asc", f"data.{counter}.gte": "1"}
    assert (await client.get(f"{API}/ticket", params=known, headers=headers)).status_code == 200
    shown = await client.get(f"{API}/ticket/REQ-0001", params={"asof": "2026-01-01T00:00:00Z"}, headers=headers)
    assert shown.status_code == 400
    assert shown.json()["validationResult"]["reason"] == {
        "asof": "unknown query parameter; this route accepts: asOf, asOfEtag, include"
    }
    me = await client.get(ME, params={"verbose": ""}, headers=headers)
    assert me.status_code == 400
    assert me.json()["validationResult"]["reason"] == {"verbose": "unknown query parameter; this route accepts: none"}


async def test_query_parameters_are_checked_after_authentication(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    response = await client.get(f"{API}/ticket", params={"q": "printer"}, headers=auth_headers(alpha, None))
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_REQUIRED"
