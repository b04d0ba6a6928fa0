"""Every error in the v2 envelope: the bodies of our errors byte for byte, and the framework's errors (routing,
method, body size, parsing, validation) mapped by the exception handlers, through a tiny Litestar app (no database).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    MethodNotAllowedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.testing import AsyncTestClient

from app.errors import (
    EXCEPTION_HANDLERS,
    AppError,
    AuthenticationRequired,
    ErrorBody,
    InputValidationFailure,
    InvalidToken,
    NamedState,
    PermissionDenied,
    ServiceUnavailable,
    TenantNotFound,
    ValidationResult,
    encode_error,
    handle_app_error,
    handle_http_exception,
)
from app.idempotency.service import IdempotencyKeyReused
from app.ticket.errors import (
    EtagMismatch,
    TicketNotFound,
    TicketVersionNotFound,
    TransitionNotAllowed,
)

BEARER = 'Bearer realm="ticketing"'
STATE_ID = uuid.UUID("44444444-4444-4444-8444-444444444444")

ERRORS = [
    pytest.param(
        AppError("Something is wrong"),
        400,
        {},
        b'{"error":true,"message":"Something is wrong","status":400}',
        id="base",
    ),
    pytest.param(
        InputValidationFailure("Ticket data failed validation", {"f1": "field is required", "f2": "too long"}),
        400,
        {},
        b'{"error":true,"code":"INPUT_VALIDATION_FAILURE","message":"Ticket data failed validation","status":400,'
        b'"validationResult":{"reason":{"f1":"field is required","f2":"too long"}}}',
        id="input-validation-failure",
    ),
    pytest.param(
        InputValidationFailure("Bad request"),
        400,
        {},
        b'{"error":true,"code":"INPUT_VALIDATION_FAILURE","message":"Bad request","status":400,'
        b'"validationResult":{"reason":{}}}',
        id="input-validation-failure-without-reason",
    ),
    pytest.param(
        PermissionDenied("The admin role is required"),
        401,
        {"WWW-Authenticate": 'Bearer realm="ticketing", error="insufficient_scope"'},
        b'{"error":true,"code":"USER_PERMISSION_FAILURE","message":"The admin role is required","status":401}',
        id="permission-denied",
    ),
    pytest.param(
        TenantNotFound(), 404, {}, b'{"error":true,"message":"Tenant not found","status":404}', id="tenant-not-found"
    ),
    pytest.param(
        AuthenticationRequired(),
        401,
        {"WWW-Authenticate": BEARER},
        b'{"error":true,"code":"AUTHENTICATION_REQUIRED","message":"A Bearer access token is required","status":401}',
        id="authentication-required",
    ),
    pytest.param(
        InvalidToken(),
        401,
        {"WWW-Authenticate": 'Bearer realm="ticketing", error="invalid_token"'},
        b'{"error":true,"code":"INVALID_TOKEN","message":"The access token is invalid or has expired","status":401}',
        id="invalid-token",
    ),
    pytest.param(
        ServiceUnavailable("The database does not answer"),
        503,
        {},
        b'{"error":true,"code":"SERVICE_UNAVAILABLE","message":"The database does not answer","status":503}',
        id="service-unavailable",
    ),
    pytest.param(
        TicketNotFound("REQ-9999"), 404, {}, b'{"error":true,"message":"Ticket not found (REQ-9999)"}', id="ticket"
    ),
    pytest.param(
        TicketNotFound("X" * 100),
        404,
        {},
        b'{"error":true,"message":"Ticket not found (' + b"X" * 64 + b')"}',
        id="ticket-long-id-cut",
    ),
    pytest.param(
        TicketVersionNotFound("REQ-1", "2025-01-01T00:00:00Z"),
        404,
        {},
        b'{"error":true,"message":"Ticket not found (REQ-1 as of 2025-01-01T00:00:00Z)"}',
        id="ticket-version",
    ),
    pytest.param(
        EtagMismatch(),
        400,
        {},
        b'{"error":true,"code":"ETAG_MISMATCH",'
        b'"message":"Ticket might have been updated. Please check changes and resubmit","status":400}',
        id="etag-mismatch",
    ),
    pytest.param(
        IdempotencyKeyReused(),
        422,
        {},
        b'{"error":true,"code":"IDEMPOTENCY_KEY_REUSED",'
        b'"message":"This Idempotency-Key was already used with a different request body","status":422}',
        id="idempotency-key-reused",
    ),
    pytest.param(
        TransitionNotAllowed("OPEN", "DONE", [NamedState(id=str(STATE_ID), name="IN_PROGRESS")]),
        400,
        {},
        b'{"error":true,"code":"TRANSITION_NOT_ALLOWED","message":"A ticket in \'OPEN\' cannot move to \'DONE\'",'
        b'"status":400,"allowedNextStates":[{"id":"' + str(STATE_ID).encode() + b'","name":"IN_PROGRESS"}]}',
        id="transition-not-allowed",
    ),
    pytest.param(
        TransitionNotAllowed(None, "DONE", []),
        400,
        {},
        b'{"error":true,"code":"TRANSITION_NOT_ALLOWED","message":"A ticket without a state cannot move to \'DONE\'",'
        b'"status":400,"allowedNextStates":[]}',
        id="transition-without-state-and-nowhere-to-go",
    ),
]


@pytest.mark.parametrize(("error", "status", "headers", "body"), ERRORS)
def test_error_bodies(error: AppError, status: int, headers: dict[str, str], body: bytes) -> None:
    assert encode_error(error.body()) == body
    assert error.status == status
    assert error.headers == headers


@pytest.mark.parametrize(("error", "status", "headers", "body"), ERRORS)
def test_app_error_handler_renders_status_headers_and_body(
    error: AppError, status: int, headers: dict[str, str], body: bytes
) -> None:
    response = handle_app_error(REQUEST, error)
    assert response.status_code == status
    assert response.content == body
    assert response.media_type == "application/json"
    assert {name: response.headers[name] for name in headers} == headers


def test_envelope_field_order_is_the_contracts() -> None:
    body = ErrorBody(
        allowedNextStates=[NamedState(id="i", name="n")],
        validationResult=ValidationResult({"k": "v"}),
        status=400,
        message="m",
        code="C",
        error=True,
    )
    assert encode_error(body) == (
        b'{"error":true,"code":"C","message":"m","status":400,"validationResult":{"reason":{"k":"v"}},'
        b'"allowedNextStates":[{"id":"i","name":"n"}]}'
    )


def test_envelope_omits_only_what_is_unset() -> None:
    assert encode_error(ErrorBody(error=True, message="")) == b'{"error":true,"message":""}'
    assert msgspec.json.decode(encode_error(ErrorBody(error=True, message="m", status=0))) == {
        "error": True,
        "message": "m",
        "status": 0,
    }


def test_error_messages_are_json_escaped() -> None:
    body = InputValidationFailure('say "hi"\n', {"a\u2028": "\x00"}).body()
    assert msgspec.json.decode(encode_error(body)) == {
        "error": True,
        "code": "INPUT_VALIDATION_FAILURE",
        "message": 'say "hi"\n',
        "status": 400,
        "validationResult": {"reason": {"a\u2028": "\x00"}},
    }


# --- the HTTP-exception handler, called directly -----------------------------------------------------------------

REQUEST: Any = object()  # the handlers do not look at the request


@pytest.mark.parametrize(
    ("exc", "status", "body", "headers"),
    [
        pytest.param(
            NotFoundException(),
            404,
            b'{"error":true,"code":"NOT_FOUND","message":"Not found","status":404}',
            {},
            id="not-found",
        ),
        pytest.param(
            NotFoundException("Ticket type not found"),
            404,
            b'{"error":true,"code":"NOT_FOUND","message":"Ticket type not found","status":404}',
            {},
            id="not-found-with-our-message",
        ),
        pytest.param(
            MethodNotAllowedException(headers={"Allow": "GET, OPTIONS", "X-Internal": "1"}),
            405,
            b'{"error":true,"code":"METHOD_NOT_ALLOWED","message":"Method not allowed","status":405}',
            {"allow": "GET, OPTIONS"},
            id="method-not-allowed-keeps-only-allow",
        ),
        pytest.param(
            HTTPException(status_code=413, detail="too big: 123456 bytes"),
            413,
            b'{"error":true,"code":"PAYLOAD_TOO_LARGE","message":"Request body is larger than the limit","status":413}',
            {},
            id="payload-too-large-in-our-words",
        ),
        pytest.param(
            HTTPException(status_code=400, detail="framework wording"),
            400,
            b'{"error":true,"code":"BAD_REQUEST","message":"Bad request","status":400}',
            {},
            id="bad-request",
        ),
        pytest.param(
            PermissionDeniedException(detail="internal detail"),
            403,
            b'{"error":true,"code":"CLIENT_ERROR","message":"The request could not be processed","status":403}',
            {},
            id="other-client-error",
        ),
    ],
)
def test_http_exception_mapping(exc: HTTPException, status: int, body: bytes, headers: dict[str, str]) -> None:
    response = handle_http_exception(REQUEST, exc)
    assert response.status_code == status
    assert response.content == body
    assert {name.lower(): value for name, value in (response.headers or {}).items()} == headers


def test_server_errors_are_not_described(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = handle_http_exception(REQUEST, InternalServerException(detail="secret database detail"))
    assert response.status_code == 500
    assert response.content == (
        b'{"error":true,"code":"INTERNAL_SERVER_ERROR","message":"Internal server error (request id -)","status":500}'
    )
    assert [record.getMessage() for record in caplog.records] == ["unhandled error"]


# --- through a tiny Litestar app ------------------------------------------------------------------------------


class Item(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    count: int


@get("/items/{item_id:int}")
async def show_item(item_id: FromPath[int]) -> dict[str, int]:
    return {"id": item_id}


@post("/items")
async def create_item(data: JSONBody[Item]) -> dict[str, str]:
    return {"name": data.name}


@get("/search")
async def search(limit: FromQuery[int]) -> dict[str, int]:
    return {"limit": limit}


RAISED: dict[str, Exception] = {
    "etag": EtagMismatch(),
    "permission": PermissionDenied("Writers only"),
    "tenant": TenantNotFound(),
    "ticket": TicketNotFound("REQ-0042"),
    "runtime": RuntimeError("secret internal detail"),
    "recursion": RecursionError("maximum recursion depth exceeded"),
}


@get("/raise/{kind:str}")
async def raise_error(kind: FromPath[str]) -> None:
    raise RAISED[kind]


APP = Litestar(
    route_handlers=[show_item, create_item, search, raise_error],
    exception_handlers=EXCEPTION_HANDLERS,
    request_max_body_size=64,
    logging_config=None,
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(APP) as test_client:
        yield test_client


def failure(message: str, reason: dict[str, str]) -> dict[str, Any]:
    return {
        "error": True,
        "code": "INPUT_VALIDATION_FAILURE",
        "message": message,
        "status": 400,
        "validationResult": {"reason": reason},
    }


@pytest.mark.parametrize(
    ("method", "path", "request_args", "status", "body"),
    [
        pytest.param(
            "GET",
            "/nowhere",
            {},
            404,
            {"error": True, "code": "NOT_FOUND", "message": "Not found", "status": 404},
            id="unknown-route",
        ),
        pytest.param(
            "GET",
            "/items/abc",
            {},
            404,
            {"error": True, "code": "NOT_FOUND", "message": "Not found", "status": 404},
            id="path-parameter-of-the-wrong-type",
        ),
        pytest.param(
            "POST",
            "/items",
            {"content": b'{"name": "' + b"x" * 100 + b'", "count": 1}'},
            413,
            {
                "error": True,
                "code": "PAYLOAD_TOO_LARGE",
                "message": "Request body is larger than the limit",
                "status": 413,
            },
            id="body-over-the-limit",
        ),
        pytest.param(
            "POST",
            "/items",
            {"content": b'{"name": '},
            400,
            failure("Request body is not valid JSON", {"body": "not valid JSON"}),
            id="malformed-json",
        ),
        pytest.param(
            "POST",
            "/items",
            {"json": {"name": 5, "count": 1}},
            400,
            failure("The request failed validation", {"name": "Expected `str`, got `int`"}),
            id="member-of-the-wrong-type",
        ),
        pytest.param(
            "POST",
            "/items",
            {"json": {"name": "a"}},
            400,
            failure("The request failed validation", {"body": "Object missing required field `count`"}),
            id="missing-member-is-about-the-body",
        ),
        pytest.param(
            "POST",
            "/items",
            {"json": [1, 2]},
            400,
            failure("The request failed validation", {"body": "Expected `object`, got `array`"}),
            id="whole-body-of-the-wrong-type",
        ),
        pytest.param(
            "POST",
            "/items",
            {"json": {"name": "a", "count": 1, "extra": True}},
            400,
            failure("The request failed validation", {"body": "Object contains unknown field `extra`"}),
            id="unknown-member",
        ),
        pytest.param(
            "GET",
            "/search?limit=ten",
            {},
            400,
            failure("The request failed validation", {"limit": "Expected `int`, got `str`"}),
            id="query-parameter-of-the-wrong-type",
        ),
        pytest.param(
            "GET",
            "/raise/recursion",
            {},
            400,
            failure("Request body is nested too deeply", {"body": "nested too deeply"}),
            id="recursion-error",
        ),
        pytest.param(
            "GET",
            "/raise/etag",
            {},
            400,
            {
                "error": True,
                "code": "ETAG_MISMATCH",
                "message": "Ticket might have been updated. Please check changes and resubmit",
                "status": 400,
            },
            id="app-error",
        ),
        pytest.param(
            "GET",
            "/raise/ticket",
            {},
            404,
            {"error": True, "message": "Ticket not found (REQ-0042)"},
            id="app-error-without-code-and-status",
        ),
    ],
)
async def test_framework_errors_in_the_envelope(
    client: AsyncTestClient[Litestar],
    method: str,
    path: str,
    request_args: dict[str, Any],
    status: int,
    body: dict[str, Any],
) -> None:
    response = await client.request(method, path, **request_args)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body
    # Wire order too: the decoded body re-encoded in the envelope's order gives the same bytes.
    assert response.content == encode_error(msgspec.convert(body, ErrorBody))


async def test_method_not_allowed_names_the_allowed_methods(client: AsyncTestClient[Litestar]) -> None:
    response = await client.delete("/items/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, OPTIONS"
    assert response.content == b'{"error":true,"code":"METHOD_NOT_ALLOWED","message":"Method not allowed","status":405}'


async def test_app_error_headers_reach_the_client(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/raise/permission")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ticketing", error="insufficient_scope"'
    assert response.content == (
        b'{"error":true,"code":"USER_PERMISSION_FAILURE","message":"Writers only","status":401}'
    )


async def test_tenant_not_found_has_no_code(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/raise/tenant")
    assert response.status_code == 404
    assert response.content == b'{"error":true,"message":"Tenant not found","status":404}'


async def test_unexpected_errors_do_not_leak_details(
    client: AsyncTestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = await client.get("/raise/runtime")
    assert response.status_code == 500
    assert b"secret" not in response.content
    assert response.json() == {
        "error": True,
        "code": "INTERNAL_SERVER_ERROR",
        "message": "Internal server error (request id -)",
        "status": 500,
    }
    assert any(record.exc_info and record.exc_info[0] is RuntimeError for record in caplog.records)


@pytest.mark.parametrize(("count", "listed"), [(100, 100), (101, 100), (100_000, 100)])
def test_the_reason_map_names_the_first_hundred_problems_and_counts_the_rest(count: int, listed: int) -> None:
    reason = {f"field-{index}": "unknown field for this ticket type" for index in range(count)}
    body = InputValidationFailure("Ticket update failed validation", reason).body()
    assert body.validationResult is not None
    shown = body.validationResult.reason
    assert list(shown)[:listed] == [f"field-{index}" for index in range(listed)]
    if count > listed:
        assert list(shown)[listed:] == ["_more"]
        assert shown["_more"] == f"{count - listed} more problems not listed"
    else:
        assert len(shown) == count
