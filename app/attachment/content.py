"""What a file is, read from its bytes as they arrive, and what it may be called.

The type comes from the content (`filetype`, which knows the leading bytes of about 80 binary formats), never from
the client: a declared type may only agree with it. Content with no known signature is plain text when it has no
control bytes (the client may then say which text format, e.g. text/csv), and otherwise a binary of no known type
(application/octet-stream). A declaration the content contradicts (an "image/png" that is HTML, a "text/plain" that is
binary) is refused, and so is a type the tenant does not accept. The decision is taken on the first HEAD_BYTES, so a
refused type is known long before a large upload ends.

File names are reduced to a safe name: the last path segment, without control or format characters, characters
Windows refuses, leading dots or runs of dots, cut to MAX_FILENAME_BYTES of UTF-8 keeping the extension, and a
fallback when nothing is left.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import filetype

from app.attachment.errors import FileRefused, FileTooLarge
from app.tenancy.model import AttachmentLimits

# filetype reads at most this many leading bytes.
HEAD_BYTES = 8192
GENERIC_TYPE = "application/octet-stream"
TEXT_TYPE = "text/plain"
# Types a file's leading bytes identify. A declaration naming one of them is checked against the content.
SIGNATURE_TYPES = frozenset(kind.mime for kind in filetype.types) - {GENERIC_TYPE}
# Formats that are zip archives inside: declaring them application/zip is not a contradiction.
ZIP_CONTAINERS = frozenset(
    {
        "application/epub+zip",
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
# Other names clients use for the same types.
ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
    "text/x-markdown": "text/markdown",
}
# Text formats other than text/*: what a client may declare for content that is text.
TEXT_APPLICATION_TYPES = frozenset({"application/json", "application/xml", "application/x-ndjson"})
# Control bytes that do not occur in text (TAB, LF, VT, FF, CR and ESC do).
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")

MAX_FILENAME_BYTES = 255
FALLBACK_FILENAME = "attachment"
_MAX_EXTENSION = 16
# Characters Windows refuses in file names (path separators are handled before).
_UNSAFE_CHARACTERS = re.compile(r'[<>:"|?*]')
_DOTS = re.compile(r"\.{2,}")
_RESERVED_WINDOWS_NAMES = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)


def safe_filename(raw: str | None) -> str:
    """A name that is safe to store, show and offer as a download name: never a path, never hidden, never empty."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    # Cc: control characters; Cf: format characters such as U+202E, which would show "exe.txt" as "txt.exe".
    name = "".join(char for char in name if unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = _UNSAFE_CHARACTERS.sub("_", name)
    name = _DOTS.sub(".", name).strip().strip(".").strip()
    if _RESERVED_WINDOWS_NAMES.fullmatch(name):
        name = f"_{name}"
    name = _cut(name)
    return name or FALLBACK_FILENAME


def _cut(name: str) -> str:
    """At most MAX_FILENAME_BYTES of UTF-8, keeping a short extension."""
    if len(name.encode()) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    room = MAX_FILENAME_BYTES - len(suffix.encode())
    return stem.encode()[:room].decode(errors="ignore").rstrip(" .") + suffix


def declared_type(raw: str | None) -> str | None:
    """A client's declared media type, without parameters, in lowercase and under its usual name; None when it
    declares nothing in particular (absent, empty, or application/octet-stream) or nothing parsable."""
    if raw is None:
        return None
    media_type = raw.split(";", 1)[0].strip().lower()
    media_type = ALIASES.get(media_type, media_type)
    if media_type == GENERIC_TYPE or not _MEDIA_TYPE.fullmatch(media_type):
        return None
    return media_type


def _is_textual(media_type: str) -> bool:
    return (
        media_type.startswith("text/") or media_type in TEXT_APPLICATION_TYPES or media_type.endswith(("+json", "+xml"))
    )


def content_type(head: bytes, declared: str | None) -> tuple[str, str | None]:
    """(the file's type, why the declaration contradicts it or None) from its leading bytes."""
    detected = filetype.guess_mime(head)
    if detected is not None and detected != GENERIC_TYPE:
        agrees = declared in (None, detected) or (declared == "application/zip" and detected in ZIP_CONTAINERS)
        return detected, None if agrees else f"declared {declared}, but the content is {detected}"
    if _BINARY_BYTES.search(head) is None:
        if declared is None:
            return TEXT_TYPE, None
        if _is_textual(declared) and declared not in SIGNATURE_TYPES:
            return declared, None
        return TEXT_TYPE, f"declared {declared}, but the content is text"
    if declared is not None and (declared in SIGNATURE_TYPES or _is_textual(declared)):
        return GENERIC_TYPE, f"declared {declared}, but the content is binary data of no known type"
    return GENERIC_TYPE, None


def accepted(media_type: str, limits: AttachmentLimits) -> bool:
    allowed = limits.allowed_types
    return media_type in allowed or f"{media_type.split('/', 1)[0]}/*" in allowed


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """A file read to its end: what its attachment row records."""

    filename: str
    size: int
    mime_type: str
    sha256: str


class Inspection:
    """Follows one file's bytes as they go to storage: counts and hashes them, refuses the file as soon as it is
    over the tenant's size limit, and decides its type once HEAD_BYTES have arrived (or the file ended)."""

    def __init__(self, filename: str, declared: str | None, limits: AttachmentLimits, field: str) -> None:
        self.filename = filename
        self._declared = declared_type(declared)
        self._limits = limits
        self._field = field
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._size = 0
        self._type: str | None = None

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limits.max_file_bytes:
            raise FileTooLarge(self.filename, self._limits.max_file_bytes)
        self._hash.update(chunk)
        if self._type is None:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
            if len(self._head) >= HEAD_BYTES:
                self._decide()

    def finish(self) -> CheckedFile:
        if self._size == 0:
            raise FileRefused(self.filename, self._field, "the file is empty")
        if self._type is None:
            self._decide()
        assert self._type is not None
        return CheckedFile(self.filename, self._size, self._type, self._hash.hexdigest())

    def _decide(self) -> None:
        media_type, contradiction = content_type(bytes(self._head), self._declared)
        if contradiction is not None:
            raise FileRefused(self.filename, self._field, contradiction)
        if not accepted(media_type, self._limits):
            raise FileRefused(self.filename, self._field, f"files of type {media_type} are not accepted")
        self._type = media_type
        self._head = bytearray()
