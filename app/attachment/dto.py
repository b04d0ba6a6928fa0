"""Wire types of the attachment API (seed 004's attachment shape, plus sha256 and author)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec
from msgspec import Meta


class AttachmentOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    # The safe name the file was stored under (path, control characters and the like removed).
    filename: str
    size: Annotated[int, Meta(description="In bytes")]
    # The type read from the file's content, which downloads are served with.
    mime_type: str
    sha256: Annotated[str, Meta(description="Hex SHA-256 of the content; the download's ETag")]
    url: Annotated[str, Meta(description="Where to download it (relative to this server)")]
    created_at: datetime.datetime
    author: Annotated[str, Meta(description="The subject that uploaded it")]


class AttachmentList(msgspec.Struct, frozen=True):
    data: list[AttachmentOut]


class UploadForm(msgspec.Struct, frozen=True):
    """The multipart/form-data body of an upload: one part, named `file`."""

    file: Annotated[
        bytes,
        Meta(
            extra_json_schema={"format": "binary"},
            description="The file (its part's filename and Content-Type are the declared name and type)",
        ),
    ]
