"""/api/v2/ticketing/ticket/{objectId}/comments: add a comment or an internal note to a ticket, list a ticket's
comments, show one."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from app.auth.principal import Principal
from app.auth.requirements import READ_SCOPE, WRITE_SCOPE, requires
from app.comment.dto import CommentOut, CommentPage, CreateCommentRequest
from app.comment.service import CommentService
from app.errors import error_responses
from app.idempotency.http import IDEMPOTENCY_KEY_PARAMETER, IdempotencyKeyHeader, replayed_headers
from app.observability import current_request_id
from app.ticket.controller import MAX_PER_PAGE, pagination

# Who may comment is the tenant file's comment roles (default: the write and customer roles); an internal note also
# needs an agent-level role (checked by the service). Reading needs a read role, or a customer role for the tickets
# the customer created.
_comment = requires("comment", WRITE_SCOPE, "comment on tickets", documented=(IDEMPOTENCY_KEY_PARAMETER,))
_read = requires("read", READ_SCOPE, "read tickets", customers=True)


class CommentController(Controller):
    path = "/ticket/{object_id:str}/comments"
    tags = ("comments",)

    @post(
        **_comment,
        operation_id="createComment",
        summary="Add a comment or an internal note to a ticket",
        status_code=201,
        responses={
            201: ResponseSpec(CommentOut, description="The comment as stored (content sanitised)"),
            **error_responses(400, 401, 404, 413, 422),
        },
    )
    async def create_comment(
        self,
        request: Request[Principal, Any, Any],
        comments: NamedDependency[CommentService],
        object_id: FromPath[str],
        data: JSONBody[CreateCommentRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[CommentOut]:
        """Needs no etag and leaves the ticket's etag as it is (a comment never makes another client's update
        stale); moves the ticket's updated_at and adds `comment.created` to its history. HTML in `content` is
        sanitised before it is stored. `is_internal: true` (an internal note, which customers never see) needs an
        agent-level role."""
        created, replayed = await comments.create(request.user, object_id, data, current_request_id(), idempotency_key)
        return Response(created, status_code=201, headers=replayed_headers(replayed))

    @get(
        **_read,
        operation_id="listComments",
        summary="A ticket's comments, oldest first",
        responses=error_responses(400, 401, 404),
    )
    async def list_comments(
        self,
        request: Request[Principal, Any, Any],
        comments: NamedDependency[CommentService],
        object_id: FromPath[str],
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> CommentPage:
        """Oldest first, `page` and `per_page` (≤ 100) like the ticket list. Customers see neither internal notes
        nor their number in the total."""
        total, rows = await comments.page(request.user, object_id, page, per_page)
        return CommentPage(data=rows, pagination=pagination(request, total, page, per_page))

    @get(
        "/{comment_id:str}",
        **_read,
        operation_id="showComment",
        summary="Show a comment",
        responses=error_responses(400, 401, 404),
    )
    async def show_comment(
        self,
        request: Request[Principal, Any, Any],
        comments: NamedDependency[CommentService],
        object_id: FromPath[str],
        comment_id: FromPath[str],
    ) -> CommentOut:
        """One comment of the ticket by its id; an internal note is not found for customers."""
        return await comments.get(request.user, object_id, comment_id)
