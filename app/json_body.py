"""JSON request bodies decoded strictly, as the OpenAPI document describes them.

Litestar decodes a body to plain JSON values and then converts them to the handler's `data` type with msgspec in
lax mode, which turns `0` and `"true"` into booleans and `"5"` into a number: a request the document (msgspec's own
JSON Schema of the same types, see app/openapi.py) calls invalid was accepted. Here the body is decoded once, in
strict mode, straight into the declared type; Litestar's conversion then finds a value of the right type and passes
it through. One typed decode also costs less than a decode to dicts plus a conversion.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.types import Empty

# Where a msgspec error points, as Litestar reads it: "... - at `$.fields[0].readOnly`".
_ERROR_LOCATION = re.compile(r"`\$\.(.+)`$")
_decoders: dict[HTTPRouteHandler, msgspec.json.Decoder[Any] | None] = {}


def _decoder(handler: HTTPRouteHandler) -> msgspec.json.Decoder[Any] | None:
    """A strict decoder for the handler's `data` parameter, if it takes one (made once per handler)."""
    if handler not in _decoders:
        data = handler.parsed_fn_signature.parameters.get("data")
        _decoders[handler] = None if data is None else msgspec.json.Decoder(data.annotation, strict=True)
    return _decoders[handler]


class StrictJsonRequest(Request[Any, Any, Any]):
    """Litestar's request, whose JSON body is the handler's `data` type decoded strictly (see the module)."""

    async def json(self) -> Any:
        decoder = _decoder(self.route_handler)
        if decoder is None or self._json is not Empty or self._connection_state.json is not Empty:
            return await super().json()
        body = await self.body()
        try:
            value = decoder.decode(body or b"null")
        except msgspec.ValidationError as exc:
            # The typed decoder stops at the first wrong value, perhaps before a syntax error further on: a body
            # that is not JSON at all is reported as such, as before.
            _check_syntax(body)
            # The shape Litestar gives its own validation errors, which app/errors.py renders.
            message = str(exc)
            location = _ERROR_LOCATION.search(message)
            raise ValidationException(
                f"Validation failed for {self.method} {self.url}",
                extra=[
                    {
                        "message": message.split(" - ", maxsplit=1)[0],
                        "key": location.group(1) if location else "data",
                        "source": "body",
                    }
                ],
            ) from None
        except msgspec.DecodeError as exc:
            raise SerializationException(str(exc)) from exc  # as Litestar's decode_json does: 400 "not valid JSON"
        self._json = self._connection_state.json = value
        return value


def _check_syntax(body: bytes) -> None:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise SerializationException(str(exc)) from exc
