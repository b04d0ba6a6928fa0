"""Seed 004's API at /api/v1: tickets (list, create, get, PATCH, DELETE), comments, users and sign-in, answering its
bodies under `data` and its errors as {"error": {"code", "message", "details": [{"field", "message"}]}}."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from app.auth.principal import Principal
from app.auth.requirements import READ_SCOPE, WRITE_SCOPE, PublicOperation
from app.auth.session import session_cookies
from app.comment.dto import CreateCommentRequest
from app.idempotency.http import IdempotencyKeyHeader, replayed_headers
from app.observability import current_request_id
from app.ticket.controller import MAX_PER_PAGE, pagination
from app.ticket.listing import MAX_SEARCH_LENGTH
from app.user.controller import MAX_QUERY_LENGTH, client_address
from app.user.dto import LoginRequest, LoginResponse, Role
from app.user.signin import SignInService
from app.v1.errors import V1_PLATFORM_EXCEPTION_HANDLERS, v1_platform_error_responses
from app.v1.platform.dto import (
    PRIORITIES,
    STATUSES,
    USER_STATUSES,
    PlatformCommentBody,
    PlatformCreateTicketRequest,
    PlatformTicketBody,
    PlatformTicketDetailBody,
    PlatformTicketPage,
    PlatformUpdateTicketRequest,
    PlatformUserPage,
)
from app.v1.platform.service import ORDERS, SORTS, PlatformService, TicketListQuery
from app.v1.routes import V1_TAG, v1_requires

# Longest value of a filter naming a person (a subject: at most 255 characters) or a status.
MAX_FILTER_LENGTH = 255
_Page = Annotated[int, QueryParameter(ge=1, le=1_000_000, description="Page number (default 1)")]
_PerPage = Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE, description="Items per page (default 20, max 100)")]
_Filter = Annotated[str | None, QueryParameter(min_length=1, max_length=MAX_FILTER_LENGTH)]


def _one_of(values: tuple[str, ...], name: str | None = None) -> QueryParameter:
    """A query parameter taking one of `values`, documented so; taken as any text and checked by the service, which
    names a wrong value in seed 004's words (Litestar's own check would name the handler's argument)."""
    return QueryParameter(name=name, schema_extra={"enum": list(values)})


class V1PlatformTicketController(Controller):
    path = "/tickets"
    exception_handlers = V1_PLATFORM_EXCEPTION_HANDLERS

    @get(
        "/",
        **v1_requires("read", READ_SCOPE, "read tickets", customers=True),
        operation_id="v1ListTickets",
        summary="List tickets (seed 004)",
        responses=v1_platform_error_responses(400, 401, 403, 404, 429),
    )
    async def list_tickets(
        self,
        request: Request[Principal, Any, Any],
        v1_platform: NamedDependency[PlatformService],
        page: _Page = 1,
        per_page: _PerPage = 20,
        # Not "status": Litestar gives handlers no argument of that name.
        status_filter: Annotated[str | None, _one_of(STATUSES, "status")] = None,
        priority: Annotated[str | None, _one_of(PRIORITIES)] = None,
        assigned_to: _Filter = None,
        created_by: _Filter = None,
        q: Annotated[str | None, QueryParameter(min_length=1, max_length=MAX_SEARCH_LENGTH)] = None,
        sort: Annotated[str | None, _one_of(SORTS)] = None,
        order: Annotated[str | None, _one_of(ORDERS)] = None,
    ) -> PlatformTicketPage:
        """Filters: `status` (open, in_progress, resolved, closed), `priority` (low, medium, high, critical),
        `assigned_to` and `created_by` (a person's id, as GET /users shows it), `q` (words in the title and
        description); `sort` by created_at (default), updated_at or priority, `order` asc or desc (default). A
        customer sees only the tickets it created."""
        query = TicketListQuery(
            page=page,
            per_page=per_page,
            status=status_filter,
            priority=priority,
            assigned_to=assigned_to,
            created_by=created_by,
            q=q,
            sort=sort,
            order=order if order is not None else "desc",
        )
        total, tickets = await v1_platform.page(request.user, query)
        return PlatformTicketPage(data=tickets, pagination=pagination(request, total, page, per_page))

    @post(
        "/",
        **v1_requires("write", WRITE_SCOPE, "create a ticket", customers=True),
        operation_id="v1CreateTicket",
        summary="Create a ticket (seed 004)",
        responses={
            201: ResponseSpec(PlatformTicketBody, description="The new ticket"),
            **v1_platform_error_responses(400, 401, 403, 404, 409, 413, 422, 429),
        },
    )
    async def create(
        self,
        request: Request[Principal, Any, Any],
        v1_platform: NamedDependency[PlatformService],
        data: JSONBody[PlatformCreateTicketRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PlatformTicketBody]:
        """A ticket of the tenant's seed 004 ticket type (default: the request type) in the state the `open` status
        stands for; `custom_fields` are the type's other fields by key, `attachments` files in base64."""
        ticket, replayed = await v1_platform.create(request.user, data, current_request_id(), idempotency_key)
        return Response(PlatformTicketBody(ticket), status_code=201, headers=replayed_headers(replayed))

    @get(
        "/{ticket_id:str}",
        **v1_requires("read", READ_SCOPE, "read tickets", customers=True),
        operation_id="v1GetTicket",
        summary="Get a ticket with its comments and files (seed 004)",
        responses=v1_platform_error_responses(400, 401, 403, 404, 429),
    )
    async def get_ticket(
        self,
        request: Request[Principal, Any, Any],
        v1_platform: NamedDependency[PlatformService],
        ticket_id: FromPath[str],
    ) -> PlatformTicketDetailBody:
        """The ticket, its comments (a customer sees no internal note) and its files."""
        return PlatformTicketDetailBody(await v1_platform.get(request.user, ticket_id))

    @patch(
        "/{ticket_id:str}",
        **v1_requires("write", WRITE_SCOPE, "update the ticket"),
        operation_id="v1PatchTicket",
        summary="Change a ticket's status, priority or assignee (seed 004)",
        responses={
            200: ResponseSpec(PlatformTicketBody, description="The ticket after the change"),
            **v1_platform_error_responses(400, 401, 403, 404, 409, 413, 422, 429),
        },
    )
    async def update(
        self,
        request: Request[Principal, Any, Any],
        v1_platform: NamedDependency[PlatformService],
        ticket_id: FromPath[str],
        data: JSONBody[PlatformUpdateTicketRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PlatformTicketBody]:
        """Only the members sent change, together or not at all, each with its own history event and webhook."""
        ticket, replayed = await v1_platform.update(
            request.user, ticket_id, data, current_request_id(), idempotency_key
        )
        return Response(PlatformTicketBody(ticket), headers=replayed_headers(replayed))

    @delete(
        "/{ticket_id:str}",
        **v1_requires("delete", WRITE_SCOPE, "delete the ticket"),
        operation_id="v1DeleteTicket",
        summary="Delete a ticket (seed 004)",
        status_code=204,
        responses={
            204: ResponseSpec(None, description="Deleted (or, with Idempotent-Replayed: true, deleted before)"),
            **v1_platform_error_responses(400, 401, 403, 404, 409, 422, 429),
        },
    )
    async def delete_ticket(
        self,
        request: Request[Principal, Any, Any],
        v1_platform: NamedDependency[PlatformService],
        ticket_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[None]:
        """As v2's deletion: the ticket is kept for audit and never found again."""
        _, replayed = await v1_platform.delete(request.user, ticket_id, current_request_id(), idempotency_key)
        return Response(None, status_code=204, headers=replayed_headers(replayed))

    @post(
        "/{ticket_id:str}/comments",
        **v1_requires("comment", WRITE_SCOPE, "comment on tickets"),
        operation_id="v1CreateComment",
        summary="Add a comment to a ticket (seed 004)",
        responses={
            201: ResponseSpec(PlatformCommentBody, description="The new comment"),
            **v1_platform_error_responses(400, 401, 403, 404, 409, 413, 422, 429),
        },
    )
    async def add_comment(
        self,
        request: Request[Principal, Any, Any],
        v1_platform: NamedDependency[PlatformService],
        ticket_id: FromPath[str],
        data: JSONBody[CreateCommentRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[PlatformCommentBody]:
        """As v2's comments: HTML is sanitised, an internal note needs an agent-level role."""
        comment, replayed = await v1_platform.add_comment(
            request.user, ticket_id, data, current_request_id(), idempotency_key
        )
        return Response(PlatformCommentBody(comment), status_code=201, headers=replayed_headers(replayed))


class V1PlatformUserController(Controller):
    path = "/users"
    exception_handlers = V1_PLATFORM_EXCEPTION_HANDLERS

    @get(
        "/",
        **v1_requires("read", READ_SCOPE, "read users"),
        operation_id="v1ListUsers",
        summary="List users (seed 004)",
        responses=v1_platform_error_responses(400, 401, 403, 404, 429),
    )
    async def list_users(
        self,
        request: Request[Principal, Any, Any],
        v1_platform: NamedDependency[PlatformService],
        page: _Page = 1,
        per_page: _PerPage = 20,
        role: FromQuery[Role | None] = None,
        status_filter: Annotated[str | None, _one_of(USER_STATUSES, "status")] = None,
        q: Annotated[str | None, QueryParameter(min_length=1, max_length=MAX_QUERY_LENGTH)] = None,
    ) -> PlatformUserPage:
        """Filters: `role` (admin, agent, customer), `status` (active, inactive), `q` (in name and email)."""
        total, users = await v1_platform.users(request.user, role, status_filter, q, page, per_page)
        return PlatformUserPage(data=users, pagination=pagination(request, total, page, per_page))


class V1SignInController(Controller):
    path = "/auth"
    exception_handlers = V1_PLATFORM_EXCEPTION_HANDLERS
    tags = (V1_TAG,)

    @post(
        "/login",
        operation_id="v1SignIn",
        summary="Sign in with email and password (seed 004)",
        operation_class=PublicOperation,
        status_code=200,
        responses={
            200: ResponseSpec(LoginResponse, description="A Bearer token of the tenant's builtin realm"),
            **v1_platform_error_responses(400, 401, 404, 429),
        },
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        sign_in: NamedDependency[SignInService],
        data: JSONBody[LoginRequest],
        tenant: Annotated[
            str | None,
            HeaderParameter(
                name="x-tenantid",
                description="UUID of the tenant (or tenant_id in the body); needed only where several tenants have "
                "a builtin realm",
            ),
        ] = None,
    ) -> Response[LoginResponse]:
        """As POST /api/v2/ticketing/auth/login. Seed 004's body names no tenant: without x-tenantid or tenant_id,
        the one tenant with a builtin realm is meant (with several, the tenant must be named: 400). Also sets the
        v1 session cookie (`session`: HttpOnly, Secure, SameSite=Strict, for /api/v1) and `csrf_token`, whose value
        a cookie-authenticated write sends as X-CSRF-Token."""
        if tenant is None and data.tenant_id is None:
            sole = sign_in.sole_sign_in_tenant()
            tenant = str(sole) if sole is not None else None
        signed_in, counted = await sign_in.login(tenant, data, client_address(request))
        return Response(signed_in, headers=counted, cookies=session_cookies(signed_in.token, signed_in.expires_at))
