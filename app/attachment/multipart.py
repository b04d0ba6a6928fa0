"""One file from a multipart/form-data request body, read as the body arrives (never buffered whole).

The parser is `multipart`'s PushMultipartParser (Litestar's own dependency), a sans-IO parser fed each chunk the
server hands over. The form has exactly one part, named `file`; anything else is refused with a 400.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from app.errors import InputValidationFailure

FILE_FIELD = "file"
# RFC 2046: 1 to 70 characters.
MAX_BOUNDARY = 70
FORM_REQUIRED = f"a multipart/form-data body with one part, named {FILE_FIELD!r}"


class FormRefused(InputValidationFailure):
    def __init__(self, member: str, problem: str) -> None:
        super().__init__("Invalid multipart/form-data body", {member: problem})


def boundary_of(content_type: str | None) -> str:
    """The boundary of a multipart/form-data Content-Type; 400 for any other type."""
    media_type, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if media_type != "multipart/form-data" or not 0 < len(boundary) <= MAX_BOUNDARY:
        raise FormRefused("content-type", f"must be multipart/form-data with a boundary: {FORM_REQUIRED}")
    return str(boundary)


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str | None
    content_type: str | None


_END = object()


class MultipartFile:
    """The file part of a form, in three steps: `part()` reads up to the file's first byte, `content()` yields its
    bytes, `finish()` reads the end of the form (nothing may follow the file but the closing boundary)."""

    def __init__(self, body: AsyncIterable[bytes], boundary: str) -> None:
        self._body = aiter(body)
        # Not strict: strict parsing refuses the CRLF that clients send after the closing boundary when it arrives in
        # a chunk of its own. A preamble is skipped (the body's size is capped by the caller).
        self._parser = PushMultipartParser(boundary, max_segment_count=2)
        self._events: deque[MultipartSegment | bytes | None] = deque()

    async def _next(self) -> MultipartSegment | bytes | object | None:
        try:
            while not self._events:
                if self._parser.closed:
                    return _END
                chunk = await anext(self._body, None)
                if chunk is None:
                    self._parser.close()  # raises when the form is incomplete
                    return _END
                if chunk:
                    self._events.extend(self._parser.parse(chunk))
        except MultipartError as exc:
            raise FormRefused("body", f"{exc}: {FORM_REQUIRED}") from None
        return self._events.popleft()

    async def part(self) -> FilePart:
        event = await self._next()
        if not isinstance(event, MultipartSegment) or event.name != FILE_FIELD:
            raise FormRefused(FILE_FIELD, f"required: {FORM_REQUIRED}")
        return FilePart(event.filename, event.content_type)

    async def content(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next()
            if event is None:
                return
            if not isinstance(event, bytes):  # the parser emits a segment's end before anything else
                raise FormRefused("body", f"incomplete: {FORM_REQUIRED}")
            yield event

    async def finish(self) -> None:
        event = await self._next()
        if event is not _END:
            raise FormRefused("body", f"one file per request: {FORM_REQUIRED}")
