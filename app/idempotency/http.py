"""The Idempotency-Key header as every write route takes and documents it, and the header a replay carries."""

from __future__ import annotations

from typing import Annotated

from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Parameter, Schema
from litestar.params import HeaderParameter

from app.idempotency.service import MAX_KEY_LENGTH

# What the service accepts as a key (printable ASCII), without the blanks at either end that HTTP strips from
# every header value.
_KEY_EDGE = "!-~"
IDEMPOTENCY_KEY_PARAMETER = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=f"^[{_KEY_EDGE}]([ {_KEY_EDGE}]*[{_KEY_EDGE}])?$",
    ),
    description="Retrying with the same key (and the same request) within IDEMPOTENCY_KEY_TTL_SECONDS returns the "
    "first answer, with Idempotent-Replayed: true, instead of writing again; the key with another request is 422",
)
# Taken as plain text: the service checks it and answers a malformed key in the v2 envelope.
IdempotencyKeyHeader = Annotated[str | None, HeaderParameter(name="Idempotency-Key")]
REPLAYED = {"Idempotent-Replayed": "true"}
# The same header as the raw ASGI pair, for the lean JSON response (app/fast_response.py).
REPLAYED_RAW = ((b"idempotent-replayed", b"true"),)


def replayed_headers(replayed: bool) -> dict[str, str]:
    return REPLAYED if replayed else {}
