"""Wire types of comments. A comment's shape follows seed 004 (`content`, `is_internal`, `attachments`, `created_at`),
with its author as `author` in seed 004's person shape (`id`: the author's subject; `name` and `email` from the users
directory, null when it has none)."""

from __future__ import annotations

import datetime
import functools
import uuid
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from app.attachment.dto import AttachmentOut
from app.ticket.dto import MAX_INLINE_ATTACHMENTS, InlineAttachment, Pagination

# Characters of content, as sent and as stored (sanitising escapes text, so stored content can be longer).
MAX_CONTENT_LENGTH = 20_000


class _CreateCommentAsEnforced(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    content: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_CONTENT_LENGTH,
            description="Text or HTML. HTML is sanitised before it is stored (p, br, strong, em, ul, ol, li, code, "
            "pre, blockquote, and links to http, https and mailto addresses are kept; everything else goes). It "
            f"must show some text, and be at most {MAX_CONTENT_LENGTH} characters once sanitised.",
        ),
    ]
    is_internal: Annotated[
        bool, Meta(description="An internal note: hidden from customers, and only agent-level roles may add one")
    ] = False
    attachments: Annotated[
        list[InlineAttachment],
        Meta(
            max_length=MAX_INLINE_ATTACHMENTS,
            description="Files that come with the comment (seed 004), under the tenant's attachment limits; an "
            "internal note's files are hidden from customers like the note",
        ),
    ] = []


class CreateCommentRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Lenient here so that every problem is reported in the INPUT_VALIDATION_FAILURE shape, each under its member's
    # name; the document states what the service enforces (app/openapi.py).
    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _CreateCommentAsEnforced)
    content: str | None = None
    is_internal: bool = False
    attachments: Annotated[list[InlineAttachment], Meta(max_length=MAX_INLINE_ATTACHMENTS)] = []


class Author(msgspec.Struct, frozen=True):
    id: str  # the author's subject
    name: str | None
    email: str | None


class CommentOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    # As stored: sanitised HTML.
    content: str
    is_internal: bool
    author: Author
    created_at: datetime.datetime
    # The files that came with the comment, in the order they were sent.
    attachments: list[AttachmentOut]


class CommentPage(msgspec.Struct, frozen=True):
    data: list[CommentOut]
    pagination: Pagination


comment_decoder = msgspec.json.Decoder(CommentOut)
comments_encoder = msgspec.json.Encoder()
