"""Rules for comments: who may add and see which, what content is stored, and how a comment enters its ticket's
history.

A comment may bring files (seed 004's inline attachments): they are checked and their blobs stored first, then the
comment and their rows commit in one transaction (all or nothing; see app/attachment/service.py for the blobs). An
internal note's files are as hidden as the note.

A comment is added to a ticket the caller may see (TicketService.visible: a customer-level caller sees only the
tickets it created). Internal notes need an agent-level role to add, and a customer-level caller never sees them: not
in lists (nor their totals), not by id, not embedded in the ticket, not in the history. Content is sanitised HTML.
"""

from __future__ import annotations

import uuid

from app.attachment.dto import AttachmentOut
from app.attachment.service import AttachmentStore, RecordStaged
from app.auth.principal import AGENT_PERMISSIONS, Principal
from app.comment.dto import (
    MAX_CONTENT_LENGTH,
    Author,
    CommentOut,
    CreateCommentRequest,
    comment_decoder,
    comments_encoder,
)
from app.comment.errors import CommentNotFound
from app.comment.repository import CommentRepository, CommentRow
from app.comment.sanitize import has_text, sanitize
from app.db.database import Database
from app.errors import InputValidationFailure, PermissionDenied
from app.idempotency.service import Idempotency, Outcome
from app.ticket.errors import TicketNotFound
from app.ticket.includes import MAX_EMBEDDED, too_many_to_embed
from app.ticket.repository import TicketRow
from app.ticket.service import TicketService
from app.user.service import UserService


class CommentService:
    def __init__(
        self,
        db: Database,
        repository: CommentRepository,
        tickets: TicketService,
        keys: Idempotency,
        attachments: AttachmentStore,
        users: UserService,
    ) -> None:
        self._db = db
        self._users = users
        self._repository = repository
        self._tickets = tickets
        self._keys = keys
        self._attachments = attachments

    async def create(
        self,
        principal: Principal,
        object_id: str,
        request: CreateCommentRequest,
        request_id: str,
        idempotency_key: str | None,
    ) -> Outcome[CommentOut]:
        if request.is_internal and not principal.permissions & AGENT_PERMISSIONS:
            raise PermissionDenied("You do not have the permission to add an internal note")
        content = _stored_content(request)
        claim = self._keys.claim(principal, idempotency_key, "create_comment", object_id, request)
        if request.attachments:
            # A ticket the caller may not see is refused before any of the files is stored.
            await self._tickets.visible(principal, object_id)
        async with self._attachments.staged(principal, request.attachments, request_id) as record:
            return await self._keys.once(
                principal,
                claim,
                lambda: self._write(principal, object_id, request, content, request_id, record),
                comment_decoder,
            )

    async def _write(
        self,
        principal: Principal,
        object_id: str,
        request: CreateCommentRequest,
        content: str,
        request_id: str,
        record_files: RecordStaged | None,
    ) -> CommentOut:
        ticket = await self._tickets.visible(principal, object_id)
        # The comment and its files commit together (within the Idempotency-Key's transaction, if any).
        async with self._db.transaction():
            row = await self._repository.create(
                principal.tenant_id,
                ticket.id,
                uuid.uuid4(),
                content,
                request.is_internal,
                principal.subject,
                request_id,
                principal.support_request,
            )
            if row is None:  # deleted since it was read
                raise TicketNotFound(object_id)
            files = [] if record_files is None else await record_files(ticket.id, row.id, request.is_internal)
        return _out(row, files, await self._users.people(principal.tenant_id, [row.author]))

    async def page(
        self, principal: Principal, object_id: str, page: int, per_page: int
    ) -> tuple[int, list[CommentOut]]:
        ticket = await self._tickets.visible(principal, object_id)
        internal = principal.sees_internal_notes
        total = await self._repository.count(principal.tenant_id, ticket.id, internal=internal)
        rows = await self._repository.page(
            principal.tenant_id, ticket.id, internal=internal, limit=per_page, offset=(page - 1) * per_page
        )
        return total, await self._with_files(principal, ticket, rows)

    async def get(self, principal: Principal, object_id: str, comment_id: str) -> CommentOut:
        ticket = await self._tickets.visible(principal, object_id)
        try:
            wanted = uuid.UUID(comment_id)
        except ValueError:
            raise CommentNotFound(comment_id) from None
        row = await self._repository.get(principal.tenant_id, ticket.id, wanted)
        # An internal note is "not found" to a customer-level caller, exactly like a comment that never existed.
        if row is None or (row.is_internal and not principal.sees_internal_notes):
            raise CommentNotFound(comment_id)
        [comment] = await self._with_files(principal, ticket, [row])
        return comment

    async def of_ticket(self, principal: Principal, ticket: TicketRow) -> list[CommentOut]:
        """Every comment of the ticket the caller may see, oldest first (seed 004's GET shows them all; the ticket
        is one the caller may see)."""
        rows = await self._repository.page(
            principal.tenant_id, ticket.id, internal=principal.sees_internal_notes, limit=None
        )
        return await self._with_files(principal, ticket, rows)

    async def embedded(self, principal: Principal, ticket: TicketRow) -> bytes:
        """The JSON of every comment of the ticket the caller may see, oldest first, to embed in the ticket
        (GET /ticket/{objectId}?include=comments; the ticket is one the caller may see)."""
        rows = await self._repository.page(
            principal.tenant_id, ticket.id, internal=principal.sees_internal_notes, limit=MAX_EMBEDDED + 1
        )
        if len(rows) > MAX_EMBEDDED:
            raise too_many_to_embed("comments", ticket)
        return comments_encoder.encode(await self._with_files(principal, ticket, rows))

    async def _with_files(self, principal: Principal, ticket: TicketRow, rows: list[CommentRow]) -> list[CommentOut]:
        files = await self._attachments.of_comments(principal.tenant_id, ticket.id, [row.id for row in rows])
        people = await self._users.people(principal.tenant_id, (row.author for row in rows))
        return [_out(row, files.get(row.id, []), people) for row in rows]


def _stored_content(request: CreateCommentRequest) -> str:
    """The content as it is stored (sanitised), or a 400 naming each problem with the request."""
    reason: dict[str, str] = {}
    content = None
    if request.content is None:
        reason["content"] = "required: the comment's text (HTML allowed)"
    elif len(request.content) > MAX_CONTENT_LENGTH:
        reason["content"] = f"at most {MAX_CONTENT_LENGTH} characters"
    else:
        content = sanitize(request.content)
        if len(content) > MAX_CONTENT_LENGTH:
            reason["content"] = f"at most {MAX_CONTENT_LENGTH} characters once sanitised (text escaped)"
        elif not has_text(content):
            reason["content"] = "shows no text once sanitised (scripts, styles and unsupported markup are removed)"
    if reason:
        raise InputValidationFailure("Invalid comment", reason)
    assert content is not None
    return content


def _out(row: CommentRow, files: list[AttachmentOut], people: dict[str, tuple[str | None, str | None]]) -> CommentOut:
    name, email = people.get(row.author, (None, None))
    return CommentOut(
        id=row.id,
        content=row.content,
        is_internal=row.is_internal,
        author=Author(id=row.author, name=name, email=email),
        created_at=row.created_at,
        attachments=files,
    )
