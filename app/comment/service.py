"""Rules for comments: who may add and see which, what content is stored, and how a comment enters its ticket's
history.

A comment is added to a ticket the caller may see (TicketService.visible: a customer-level caller sees only the
tickets it created). Internal notes need an agent-level role to add, and a customer-level caller never sees them: not
in lists (nor their totals), not by id, not embedded in the ticket, not in the history. Content is sanitised HTML.
"""

from __future__ import annotations

import uuid

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
from app.errors import InputValidationFailure, PermissionDenied
from app.idempotency.service import Idempotency, Outcome
from app.ticket.errors import TicketNotFound
from app.ticket.repository import TicketRow
from app.ticket.service import TicketService


class CommentService:
    def __init__(self, repository: CommentRepository, tickets: TicketService, keys: Idempotency) -> None:
        self._repository = repository
        self._tickets = tickets
        self._keys = keys

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

        async def write() -> CommentOut:
            ticket = await self._tickets.visible(principal, object_id)
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
            return _out(row)

        claim = self._keys.claim(principal, idempotency_key, "create_comment", object_id, request)
        return await self._keys.once(principal, claim, write, comment_decoder)

    async def page(
        self, principal: Principal, object_id: str, page: int, per_page: int
    ) -> tuple[int, list[CommentOut]]:
        ticket = await self._tickets.visible(principal, object_id)
        internal = _sees_internal_notes(principal)
        total = await self._repository.count(principal.tenant_id, ticket.id, internal=internal)
        rows = await self._repository.page(
            principal.tenant_id, ticket.id, internal=internal, limit=per_page, offset=(page - 1) * per_page
        )
        return total, [_out(row) for row in rows]

    async def get(self, principal: Principal, object_id: str, comment_id: str) -> CommentOut:
        ticket = await self._tickets.visible(principal, object_id)
        try:
            wanted = uuid.UUID(comment_id)
        except ValueError:
            raise CommentNotFound(comment_id) from None
        row = await self._repository.get(principal.tenant_id, ticket.id, wanted)
        # An internal note is "not found" to a customer-level caller, exactly like a comment that never existed.
        if row is None or (row.is_internal and not _sees_internal_notes(principal)):
            raise CommentNotFound(comment_id)
        return _out(row)

    async def embedded(self, principal: Principal, ticket: TicketRow) -> bytes:
        """The JSON of every comment of the ticket the caller may see, oldest first, to embed in the ticket
        (GET /ticket/{objectId}?include=comments; the ticket is one the caller may see)."""
        rows = await self._repository.page(
            principal.tenant_id, ticket.id, internal=_sees_internal_notes(principal), limit=None
        )
        return comments_encoder.encode([_out(row) for row in rows])


def _sees_internal_notes(principal: Principal) -> bool:
    return not principal.customer_only


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
    if request.attachments:
        reason["attachments"] = "inline attachments on comments are not supported yet: send [] or leave it out"
    if reason:
        raise InputValidationFailure("Invalid comment", reason)
    assert content is not None
    return content


def _out(row: CommentRow) -> CommentOut:
    return CommentOut(
        id=row.id,
        content=row.content,
        is_internal=row.is_internal,
        author=Author(id=row.author, name=None, email=None),
        created_at=row.created_at,
        attachments=[],
    )
