"""The AppError hierarchy and the one place that renders every error in the v2 envelope.

Envelope: {"error": true, "code": ..., "message": ..., "status": ...}, plus validationResult.reason for
INPUT_VALIDATION_FAILURE. A few contract bodies omit code or status (seed 002's "Tenant not found" and
"Ticket not found"); an error says which members it carries.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, ClassVar, Literal

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from msgspec import UNSET, UnsetType

from app.db.errors import DatabaseUnavailable, UnstorableText
from app.observability import current_request_id

log = logging.getLogger("app.errors")

WWW_AUTHENTICATE = "WWW-Authenticate"


class ValidationResult(msgspec.Struct, frozen=True):
    reason: dict[str, str]


class NamedState(msgspec.Struct, frozen=True):
    id: str
    name: str


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """The v2 error envelope. A member that does not apply is left out, never null (seed 002's "Ticket not found"
    has neither code nor status)."""

    # Field order is the wire order of the contract's examples.
    error: Literal[True]  # no default, so omit_defaults never drops it
    code: str | UnsetType = UNSET
    message: str
    status: int | UnsetType = UNSET
    validationResult: ValidationResult | UnsetType = UNSET
    # TRANSITION_NOT_ALLOWED: the states the ticket may move to instead.
    allowedNextStates: list[NamedState] | UnsetType = UNSET


_encoder = msgspec.json.Encoder()


class AppError(Exception):
    """A failure a client should see. Subclasses fix status and code; instances carry the message."""

    status: ClassVar[int] = 400
    code: ClassVar[str | None] = None
    include_status: ClassVar[bool] = True

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        return ErrorBody(
            error=True,
            message=self.message,
            code=UNSET if self.code is None else self.code,
            status=self.status if self.include_status else UNSET,
        )


class InputValidationFailure(AppError):
    status = 400
    code = "INPUT_VALIDATION_FAILURE"

    def __init__(self, message: str, reason: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason or {}

    def body(self) -> ErrorBody:
        return msgspec.structs.replace(super().body(), validationResult=ValidationResult(capped(self.reason)))


# A body naming every one of 100,000 unknown fields would be larger than the request: name the first ones only.
MAX_REASONS = 100
MORE_REASONS_KEY = "_more"


def capped(reason: dict[str, str]) -> dict[str, str]:
    """The first MAX_REASONS entries, plus `_more` saying how many were left out."""
    if len(reason) <= MAX_REASONS:
        return reason
    kept = dict(itertools.islice(reason.items(), MAX_REASONS))
    kept[MORE_REASONS_KEY] = f"{len(reason) - MAX_REASONS} more problems not listed"
    return kept


class AuthenticationRequired(AppError):
    status = 401
    code = "AUTHENTICATION_REQUIRED"

    def __init__(self) -> None:
        super().__init__("A Bearer access token is required", headers={WWW_AUTHENTICATE: 'Bearer realm="ticketing"'})


class RealmRequired(AppError):
    """A valid token without the realmname header: the caller's set-up is incomplete, the token is fine."""

    status = 401
    code = "AUTHENTICATION_REQUIRED"

    def __init__(self) -> None:
        super().__init__(
            "The realmname header is required: the name of the realm that issued the token",
            headers={WWW_AUTHENTICATE: 'Bearer realm="ticketing", error="invalid_request"'},
        )


class InvalidToken(AppError):
    """Any token that fails verification. One message for every cause: the cause is logged, not disclosed."""

    status = 401
    code = "INVALID_TOKEN"

    def __init__(self) -> None:
        super().__init__(
            "The access token is invalid or has expired",
            headers={WWW_AUTHENTICATE: 'Bearer realm="ticketing", error="invalid_token"'},
        )


class PermissionDenied(AppError):
    # 401, not 403: the wire contract (seed 002) fixes this status for USER_PERMISSION_FAILURE.
    status = 401
    code = "USER_PERMISSION_FAILURE"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={WWW_AUTHENTICATE: 'Bearer realm="ticketing", error="insufficient_scope"'})


class TenantNotFound(AppError):
    status = 404

    def __init__(self) -> None:
        super().__init__("Tenant not found")


class ServiceUnavailable(AppError):
    status = 503
    code = "SERVICE_UNAVAILABLE"


def encode_error(body: ErrorBody) -> bytes:
    return _encoder.encode(body)


def _render(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=encode_error(body), status_code=status, media_type="application/json", headers=headers)


def handle_app_error(_: Request[Any, Any, Any], exc: AppError) -> Response[bytes]:
    return _render(exc.status, exc.body(), exc.headers)


_HTTP_CODES = {
    400: ("BAD_REQUEST", "Bad request"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    413: ("PAYLOAD_TOO_LARGE", "Request body is larger than the limit"),
}


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Framework errors (routing, method, body size, parsing) in the same envelope, with our own wording."""
    status = exc.status_code
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        if isinstance(exc, InternalServerException) and exc.detail == _CLIENT_DISCONNECTED:
            return _client_went_away()
        return handle_unexpected(request, exc)
    if isinstance(exc, ValidationException):
        return _render(status, _validation_body(exc))
    if isinstance(exc.__cause__, SerializationException):
        return _render(status, _MALFORMED_JSON)
    code, message = _HTTP_CODES.get(status, ("CLIENT_ERROR", "The request could not be processed"))
    if isinstance(exc, NotFoundException) and exc.detail and exc.detail != "Not Found":
        message = exc.detail
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return _render(status, ErrorBody(error=True, message=message, code=code, status=status), headers)


# What Litestar's body reader raises when the client hangs up (or is cut off by the body deadline of app/limits.py)
# before its body is complete.
_CLIENT_DISCONNECTED = "client disconnected prematurely"
# nginx's "client closed request": never sent (there is no one to send it to), but the access log shows it.
CLIENT_CLOSED_REQUEST = 499


def _client_went_away() -> Response[bytes]:
    """Not a failure of ours: one quiet line, no traceback."""
    log.info("client disconnected before sending the whole request body")
    return Response(content=b"", status_code=CLIENT_CLOSED_REQUEST)


def _validation_body(exc: ValidationException) -> ErrorBody:
    reason: dict[str, str] = {}
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or "body")
            reason[_BODY_KEYS.get(key, key)] = str(item.get("message", "invalid"))
    return InputValidationFailure("The request failed validation", reason).body()


# Litestar names the whole body "data" (the handler argument); clients know it as the body.
_BODY_KEYS = {"data": "body"}


def body_error(message: str, reason: str) -> ErrorBody:
    """An INPUT_VALIDATION_FAILURE about the request body as a whole."""
    return InputValidationFailure(message, {"body": reason}).body()


_MALFORMED_JSON = body_error("Request body is not valid JSON", "not valid JSON")


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    request_id = current_request_id()
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    body = ErrorBody(
        error=True,
        message=f"Internal server error (request id {request_id})",
        code="INTERNAL_SERVER_ERROR",
        status=500,
    )
    return _render(500, body)


def handle_too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    """JSON nested thousands deep exhausts the decoder's recursion limit: the client's input, not our fault."""
    log.warning("request nested too deeply", extra={"reason": str(exc)[:200]})
    return _render(400, _TOO_DEEP)


_TOO_DEEP = body_error("Request body is nested too deeply", "nested too deeply")


def handle_undecodable_body(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[bytes]:
    """A body with bytes that are not UTF-8: msgspec raises UnicodeDecodeError, which Litestar's JSON parsing does
    not turn into its own 400, so it would otherwise reach the 500 handler. Only client input is decoded here."""
    log.info("request body is not UTF-8", extra={"reason": str(exc)[:200]})
    return _render(400, _MALFORMED_JSON)


# Seconds a client should wait before retrying while the database is away.
RETRY_AFTER_SECONDS = 5


def handle_database_unavailable(_: Request[Any, Any, Any], exc: DatabaseUnavailable) -> Response[bytes]:
    """The database is down, restarting or out of connections: 503 with Retry-After, and nothing in the log here
    (the database boundary logs each outage once, when it begins and when it ends)."""
    return _render(503, _DATABASE_UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_SECONDS)})


_DATABASE_UNAVAILABLE = ServiceUnavailable("The service is temporarily unavailable; retry later").body()


def handle_unstorable_text(_: Request[Any, Any, Any], exc: UnstorableText) -> Response[bytes]:
    """Text PostgreSQL cannot store (a NUL character) that no field check caught first: the client's input."""
    log.info("unstorable text in request", extra={"error": exc.__class__.__name__})
    return _render(400, _UNSTORABLE_TEXT)


_UNSTORABLE_TEXT = body_error(
    "Text may not contain the NUL character (\\u0000)", "text may not contain the NUL character (\\u0000)"
)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: handle_app_error,
    UnstorableText: handle_unstorable_text,
    DatabaseUnavailable: handle_database_unavailable,
    RecursionError: handle_too_deep,
    UnicodeDecodeError: handle_undecodable_body,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}


_RESPONSE_DESCRIPTIONS = {
    400: "INPUT_VALIDATION_FAILURE with validationResult.reason naming each offending field; ETAG_MISMATCH; "
    "TRANSITION_NOT_ALLOWED with allowedNextStates",
    401: "AUTHENTICATION_REQUIRED or INVALID_TOKEN (with WWW-Authenticate), or USER_PERMISSION_FAILURE",
    404: 'Not found; "Tenant not found" when x-tenantid is malformed or differs from the token\'s tenant',
    409: "STATE_HAS_REFERENCES: tickets or other states still refer to the state; USER_EXISTS: the email is taken",
    412: "PRECONDITION_FAILED: the ticket's etag is none of those If-Match names",
    413: "PAYLOAD_TOO_LARGE: the body exceeds MAX_BODY_BYTES",
    422: "IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used with a different body",
    429: "TOO_MANY_ATTEMPTS (with Retry-After): too many failed sign-ins for the account or from the address",
    503: "SERVICE_UNAVAILABLE (with Retry-After): the database does not answer; retry later",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the error envelopes a route can answer with; every route that reaches the database
    may answer 503 while it is away."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody, description=_RESPONSE_DESCRIPTIONS[status], generate_examples=False
        )
        for status in (*statuses, 503)
    }
