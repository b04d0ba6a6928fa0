"""The rate limits in the OpenAPI document: the X-RateLimit-* headers on the answers of every operation that
counts, and its 429 answer. Litestar documents neither headers nor an error response on a whole router, so they are
added to the generated document once, at start-up."""

from __future__ import annotations

from litestar.openapi.spec import OpenAPI, OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType

from app.ratelimit.limiter import LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER

# Absent while Redis is away (requests are then served without limits), so never required.
_RATE_LIMIT_HEADERS: dict[str, OpenAPIHeader | Reference] = {
    LIMIT_HEADER: OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
        description="Requests a minute the client's plan allows (or writes a minute to the ticket, when that limit "
        "is the closer one)",
    ),
    REMAINING_HEADER: OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER, minimum=0), description="Requests left before the limit is reached"
    ),
    RESET_HEADER: OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER, minimum=0),
        description="When the whole limit is available again, in seconds since the Unix epoch",
    ),
}
_TOO_MANY_REQUESTS = OpenAPIResponse(
    description="RATE_LIMIT_EXCEEDED: the client's requests a minute, or the writes a minute to this ticket, are "
    "used up; retry after Retry-After seconds",
    headers={
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER, minimum=1), required=True, description="Seconds to wait"
        ),
        **_RATE_LIMIT_HEADERS,
    },
    content={"application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/ErrorBody"))},
)
# Answers given before a request is counted: authentication's.
_UNCOUNTED = frozenset({"401"})


def document_rate_limits(document: OpenAPI, prefix: str) -> None:
    """Every operation under `prefix` is rate limited."""
    for path, item in (document.paths or {}).items():
        if not path.startswith(prefix):
            continue
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method)
            if operation is None or operation.responses is None:
                continue
            for status, response in operation.responses.items():
                if status not in _UNCOUNTED and isinstance(response, OpenAPIResponse):
                    response.headers = {**(response.headers or {}), **_RATE_LIMIT_HEADERS}
            operation.responses["429"] = _TOO_MANY_REQUESTS
