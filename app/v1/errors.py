"""The v1 error envelope of seeds 000 and 001, and the translation of every error the services raise into it.

{"success": false, "error": {"message", "code", "details"?}}: VALIDATION_ERROR 400 with details keyed by field,
NOT_FOUND 404, UNAUTHORIZED 401, FORBIDDEN 403. Each surface keeps its own contract: where v2 answers a missing
permission with 401 USER_PERMISSION_FAILURE, v1 answers 403 FORBIDDEN.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from msgspec import UNSET, UnsetType

from app.db.errors import DatabaseUnavailable, UnstorableText
from app.errors import (
    RETRY_AFTER_SECONDS,
    WWW_AUTHENTICATE,
    AppError,
    AuthenticationRequired,
    InputValidationFailure,
    InvalidToken,
    PermissionDenied,
    RealmRequired,
    TenantNotFound,
    capped,
    handle_unexpected,
)

log = logging.getLogger("app.v1")

VALIDATION_ERROR = "VALIDATION_ERROR"
VALIDATION_FAILED = "Validation failed"


class V1ErrorDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    message: str
    code: str
    # Per field, what is wrong with it (VALIDATION_ERROR only).
    details: dict[str, str] | UnsetType = UNSET


class V1ErrorBody(msgspec.Struct, frozen=True):
    success: bool
    error: V1ErrorDetail


class V1Error(Exception):
    """A failure in the v1 envelope, raised by the v1 layer itself."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def validation_error(details: dict[str, str]) -> V1Error:
    return V1Error(400, VALIDATION_ERROR, VALIDATION_FAILED, details)


TICKET_NOT_FOUND = ("NOT_FOUND", "Ticket not found")
PLATFORM_TICKET_NOT_FOUND = ("not_found", "Ticket not found")
_UNAUTHORIZED = ("UNAUTHORIZED", "Unauthorized access")
_FORBIDDEN = ("FORBIDDEN", "Insufficient permissions")
_encoder = msgspec.json.Encoder()


def _render(
    status: int,
    code: str,
    message: str,
    details: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    detail = V1ErrorDetail(message, code, UNSET if details is None else capped(details))
    return Response(
        content=_encoder.encode(V1ErrorBody(False, detail)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


@dataclass(frozen=True)
class Envelope:
    """What sets one v1 error envelope apart from another (seeds 000/001's, seed 004's): how a body is rendered, and
    the codes and messages of its common answers. `handlers` turns it into the exception handlers of its routes."""

    render: Callable[..., Response[bytes]]
    # A common answer's code, from its upper-case name (NOT_FOUND, METHOD_NOT_ALLOWED, ...).
    code: Callable[[str], str]
    invalid: tuple[str, str]
    unauthorized: tuple[str, str]
    forbidden: tuple[str, str]
    ticket_not_found: tuple[str, str]
    # Whether a refusal without per-field reasons names the body (seed 004: details is a list, never empty).
    reason_or_body: bool = False
    # Whether a member the body should not have is named as the field (seed 004), rather than reported under "body".
    name_unknown_members: bool = False


# msgspec's words for a member the request does not have (forbid_unknown_fields), with where it was.
_UNKNOWN_MEMBER = re.compile(r"Object contains unknown field `([^`]{0,64})[^`]*`(?: - at `\$\.?([^`]*)`)?")


def _validation_details(exc: ValidationException, name_unknown_members: bool) -> dict[str, str]:
    details: dict[str, str] = {}
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or "body")
            message = str(item.get("message", "invalid"))
            unknown = _UNKNOWN_MEMBER.fullmatch(message) if name_unknown_members else None
            if unknown is not None:
                name, where = unknown.groups()
                key, message = (f"{where}.{name}" if where else name), "not a member of this request"
            details["body" if key == "data" else key] = message
    return details


def handlers(envelope: Envelope) -> dict[type[Exception] | int, Any]:
    """The exception handlers of the routes answering in `envelope`."""
    render, code = envelope.render, envelope.code

    def v1_error(_: Request[Any, Any, Any], exc: V1Error) -> Response[bytes]:
        return render(exc.status, exc.code, exc.message, exc.details)

    def app_error(_: Request[Any, Any, Any], exc: AppError) -> Response[bytes]:
        """The services' errors. The v1 layer translates field UUIDs to v1 names before it lets an
        INPUT_VALIDATION_FAILURE through; what reaches here unchanged (a header, the body as a whole) keeps its key."""
        challenge = {WWW_AUTHENTICATE: exc.headers[WWW_AUTHENTICATE]} if WWW_AUTHENTICATE in exc.headers else {}
        if isinstance(exc, AuthenticationRequired | InvalidToken | RealmRequired):
            return render(401, *envelope.unauthorized, headers=challenge)
        if isinstance(exc, PermissionDenied):
            return render(403, *envelope.forbidden)
        if isinstance(exc, TenantNotFound):
            return render(404, code("NOT_FOUND"), "Tenant not found")
        if isinstance(exc, InputValidationFailure):
            reason = (exc.reason or {"body": exc.message}) if envelope.reason_or_body else exc.reason
            return render(400, *envelope.invalid, reason)
        if exc.status == 404:
            return render(404, *envelope.ticket_not_found)
        return render(exc.status, code(exc.code or "ERROR"), exc.message, headers=exc.headers)

    def http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        """Framework errors (body parsing, method, size)."""
        status = exc.status_code
        if status >= HTTP_500_INTERNAL_SERVER_ERROR:
            return handle_unexpected(request, exc)
        if isinstance(exc, ValidationException):
            details = _validation_details(exc, envelope.name_unknown_members)
            return render(400, *envelope.invalid, details or {"body": "not valid JSON"})
        if status == 400:
            return render(400, *envelope.invalid, {"body": "not valid JSON"})
        if status == 404:
            return render(404, code("NOT_FOUND"), "Not found")
        if status == 405:
            allow = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
            return render(405, code("METHOD_NOT_ALLOWED"), "Method not allowed", headers=allow)
        if status == 413:
            return render(413, code("PAYLOAD_TOO_LARGE"), "Request body is larger than the limit")
        return render(status, code("CLIENT_ERROR"), "The request could not be processed")

    def database_unavailable(_: Request[Any, Any, Any], exc: DatabaseUnavailable) -> Response[bytes]:
        message = "The service is temporarily unavailable; retry later"
        return render(503, code("SERVICE_UNAVAILABLE"), message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    def unstorable(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        return render(400, *envelope.invalid, {"body": "text may not contain the NUL character"})

    def undecodable(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        """A body nested too deeply or not UTF-8: the client's input."""
        return render(400, *envelope.invalid, {"body": "not valid JSON"})

    return {
        V1Error: v1_error,
        AppError: app_error,
        UnstorableText: unstorable,
        DatabaseUnavailable: database_unavailable,
        RecursionError: undecodable,
        UnicodeDecodeError: undecodable,
        HTTPException: http_exception,
        Exception: handle_unexpected,
    }


V1_EXCEPTION_HANDLERS = handlers(
    Envelope(
        render=_render,
        code=str,
        invalid=(VALIDATION_ERROR, VALIDATION_FAILED),
        unauthorized=_UNAUTHORIZED,
        forbidden=_FORBIDDEN,
        ticket_not_found=TICKET_NOT_FOUND,
    )
)


_DESCRIPTIONS = {
    400: "VALIDATION_ERROR with details naming each offending field",
    401: "UNAUTHORIZED: no token, or a token that is invalid or expired",
    403: "FORBIDDEN: the token lacks the scope or role the route needs",
    404: "NOT_FOUND: no such ticket in the caller's tenant (or x-tenantid names another tenant)",
    409: "CONFLICT: the ticket kept changing under concurrent writes; retry",
    413: "PAYLOAD_TOO_LARGE: the body exceeds MAX_BODY_BYTES",
    422: "IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used with a different body",
    503: "SERVICE_UNAVAILABLE (with Retry-After): the database does not answer; retry later",
}


def v1_error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the v1 error envelopes a route answers with (and 503 while the database is away)."""
    return {
        status: ResponseSpec(data_container=V1ErrorBody, description=_DESCRIPTIONS[status], generate_examples=False)
        for status in (*statuses, 503)
    }


# --- seed 003's envelope: {"error": "<message>"} ---------------------------------------------------------------


class V1StateErrorBody(msgspec.Struct, frozen=True):
    error: str


def _render_state_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=_encoder.encode(V1StateErrorBody(message)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def handle_state_v1_error(_: Request[Any, Any, Any], exc: V1Error) -> Response[bytes]:
    return _render_state_error(exc.status, exc.message)


def handle_state_app_error(_: Request[Any, Any, Any], exc: AppError) -> Response[bytes]:
    """The services' errors as seed 003's: 401 "authentication failed", 403 "Not authorized", 404 "Couldn't find",
    422 for a refused value (the message naming each member) and for a state that is still referenced."""
    challenge = {WWW_AUTHENTICATE: exc.headers[WWW_AUTHENTICATE]} if WWW_AUTHENTICATE in exc.headers else {}
    if isinstance(exc, AuthenticationRequired | InvalidToken | RealmRequired):
        return _render_state_error(401, "authentication failed", challenge)
    if isinstance(exc, PermissionDenied):
        return _render_state_error(403, "Not authorized")
    if isinstance(exc, TenantNotFound):
        return _render_state_error(404, "Tenant not found")
    if isinstance(exc, InputValidationFailure):
        reasons = "; ".join(f"{name}: {problem}" for name, problem in capped(exc.reason).items())
        # A malformed header or query parameter makes the request malformed (400); refused values are 422.
        malformed = exc.message in ("Invalid request headers", "Invalid query parameters")
        return _render_state_error(400 if malformed else 422, reasons or exc.message)
    if exc.code == "STATE_HAS_REFERENCES":
        return _render_state_error(422, exc.message)
    return _render_state_error(exc.status, exc.message, exc.headers)


def handle_state_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        return handle_unexpected(request, exc)
    if isinstance(exc, ValidationException):
        problems = [
            f"{'body' if item.get('key') == 'data' else item.get('key') or 'body'}: {item.get('message', 'invalid')}"
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        ]
        return _render_state_error(422, "; ".join(problems) or "body: not valid JSON")
    if status == 400:
        return _render_state_error(400, "body: not valid JSON")
    if status == 404:
        return _render_state_error(404, "Not found")
    return _render_state_error(status, "The request could not be processed")


def handle_state_database_unavailable(_: Request[Any, Any, Any], exc: DatabaseUnavailable) -> Response[bytes]:
    return _render_state_error(
        503, "The service is temporarily unavailable; retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def handle_state_bad_input(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A body that is not JSON (or nested too deeply, or not UTF-8) is malformed: 400. Well-formed JSON whose values
    are refused is 422, as the API seed 003 documents answers it."""
    return _render_state_error(400, "body: not valid JSON")


def handle_state_unstorable(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return _render_state_error(422, "text may not contain the NUL character")


V1_STATE_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    V1Error: handle_state_v1_error,
    AppError: handle_state_app_error,
    UnstorableText: handle_state_unstorable,
    DatabaseUnavailable: handle_state_database_unavailable,
    RecursionError: handle_state_bad_input,
    UnicodeDecodeError: handle_state_bad_input,
    HTTPException: handle_state_http_exception,
    Exception: handle_unexpected,
}

_STATE_DESCRIPTIONS = {
    400: "The request is malformed: a body that is not JSON",
    401: "authentication failed: no token, or a token that is invalid or expired",
    403: "Not authorized: the token lacks the scope, or a role of the permission the route needs",
    404: "Couldn't find the state (or x-tenantid names another tenant)",
    413: "The body exceeds MAX_BODY_BYTES",
    422: 'A refused value, naming each member; "Can\'t delete, object has references."; an Idempotency-Key '
    "reused with a different body",
    503: "The database does not answer (with Retry-After); retry later",
}


def v1_state_error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=V1StateErrorBody, description=_STATE_DESCRIPTIONS[status], generate_examples=False
        )
        for status in (*statuses, 503)
    }


# --- seed 004's envelope: {"error": {"code", "message", "details": [{"field", "message"}]}} --------------------------

INVALID_INPUT = ("invalid_input", "The request data is invalid")
# Values the ticket type's own rules refuse (a custom field's schema, a required field): well-formed, not acceptable.
VALIDATION_FAILED_422 = ("validation_error", "The request data failed validation")


class PlatformErrorDetail(msgspec.Struct, frozen=True):
    field: str
    message: str


class PlatformErrorMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    code: str
    message: str
    details: list[PlatformErrorDetail] | UnsetType = UNSET


class PlatformErrorBody(msgspec.Struct, frozen=True):
    error: PlatformErrorMessage


def invalid_input(details: dict[str, str]) -> V1Error:
    return V1Error(400, *INVALID_INPUT, details)


def _render_platform(
    status: int,
    code: str,
    message: str,
    details: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    listed = (
        UNSET
        if details is None
        else [PlatformErrorDetail(field, problem) for field, problem in capped(details).items()]
    )
    return Response(
        content=_encoder.encode(PlatformErrorBody(PlatformErrorMessage(code, message, listed))),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


V1_PLATFORM_EXCEPTION_HANDLERS = handlers(
    Envelope(
        render=_render_platform,
        code=str.lower,
        invalid=INVALID_INPUT,
        unauthorized=("unauthorized", "Authentication required"),
        forbidden=("forbidden", "You do not have permission to perform this action"),
        ticket_not_found=PLATFORM_TICKET_NOT_FOUND,
        reason_or_body=True,
        name_unknown_members=True,
    )
)

_PLATFORM_DESCRIPTIONS = {
    400: "invalid_input, each offending field in details",
    401: "unauthorized: no token, or a token that is invalid or expired (login: wrong email or password)",
    403: "forbidden: the token lacks the scope or role the route needs",
    404: "not_found: no such ticket in the caller's tenant (or x-tenantid names another tenant)",
    409: "conflict: the ticket kept changing under concurrent writes, or an Idempotency-Key's first request is "
    "still running; retry",
    413: "payload_too_large: the body exceeds MAX_BODY_BYTES",
    422: "validation_error: a value the ticket type refuses, each in details; idempotency_key_reused",
    429: "rate_limit_exceeded (with Retry-After and X-RateLimit-*)",
    503: "service_unavailable (with Retry-After): the database does not answer; retry later",
}


def v1_platform_error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of seed 004's error envelope for a route (and 503 while the database is away)."""
    return {
        status: ResponseSpec(
            data_container=PlatformErrorBody, description=_PLATFORM_DESCRIPTIONS[status], generate_examples=False
        )
        for status in (*statuses, 503)
    }
