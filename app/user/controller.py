"""/api/v2/ticketing/users: readers list and show the tenant's users; administrators add, change and deactivate
users of the tenant's builtin realm. /api/v2/ticketing/auth/login: sign-in to a builtin realm (no token needed)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from app.auth.principal import Principal
from app.auth.requirements import ADMIN_SCOPE, READ_SCOPE, PublicOperation, requires
from app.errors import error_responses
from app.idempotency.http import IDEMPOTENCY_KEY_PARAMETER, IdempotencyKeyHeader, replayed_headers
from app.ticket.controller import MAX_PER_PAGE, pagination
from app.user.dto import (
    AcceptInvitationRequest,
    CreatedUser,
    CreateUserRequest,
    LoginRequest,
    LoginResponse,
    Role,
    Status,
    UpdateUserRequest,
    UserOut,
    UserPage,
)
from app.user.service import UserService
from app.user.signin import SignInService

_read = requires("read", READ_SCOPE, "read users")
_admin = requires("admin", ADMIN_SCOPE, "administer users", documented=(IDEMPOTENCY_KEY_PARAMETER,))
# The routes that take no token and answer with one: sign-in and accepting an invitation.
_signs_in: dict[str, Any] = {
    "operation_class": PublicOperation,
    "status_code": 200,
    "responses": {
        200: ResponseSpec(LoginResponse, description="A Bearer token of the tenant's builtin realm"),
        **error_responses(400, 401, 404, 429),
    },
}
TenantHeader = Annotated[
    str | None, HeaderParameter(name="x-tenantid", description="UUID of the tenant (or tenant_id in the body)")
]
MAX_QUERY_LENGTH = 200


class UserController(Controller):
    path = "/users"
    tags = ("users",)

    @get(**_read, operation_id="listUsers", summary="List the tenant's users", responses=error_responses(400, 401, 404))
    async def list_users(
        self,
        request: Request[Principal, Any, Any],
        users: NamedDependency[UserService],
        role: FromQuery[Role | None] = None,
        status: FromQuery[Status | None] = None,
        q: Annotated[str | None, QueryParameter(min_length=1, max_length=MAX_QUERY_LENGTH)] = None,
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> UserPage:
        """Oldest first; `role` (admin, agent, customer), `status` (active, inactive) and `q` (a part of the name or
        email, in any letter case) filter; `page` and `per_page` (≤ 100) like the ticket list. Users of external
        realms appear after their first call."""
        total, rows = await users.page(request.user, role, status, q, page, per_page)
        return UserPage(data=rows, pagination=pagination(request, total, page, per_page))

    @get(
        "/{user_id:str}",
        **_read,
        operation_id="showUser",
        summary="Show a user",
        responses=error_responses(400, 401, 404),
    )
    async def show_user(
        self, request: Request[Principal, Any, Any], users: NamedDependency[UserService], user_id: FromPath[str]
    ) -> UserOut:
        """One user of the tenant by its id."""
        return await users.get(request.user, user_id)

    @post(
        **_admin,
        operation_id="createUser",
        summary="Add a user to the tenant's builtin realm",
        status_code=201,
        responses={
            201: ResponseSpec(CreatedUser, description="The new user (`user.created` is recorded)"),
            **error_responses(400, 401, 404, 409, 413, 422),
        },
    )
    async def create_user(
        self,
        request: Request[Principal, Any, Any],
        users: NamedDependency[UserService],
        data: JSONBody[CreateUserRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[CreatedUser]:
        """The user signs in with this email (unique in the realm, in any letter case) and password at
        POST /auth/login. Without a password the user is invited: `status: inactive`, and the answer's `invitation`
        holds a token (shown only here) with which the user sets a password at POST /auth/invitation.
        409 USER_EXISTS when the email is taken."""
        created, replayed = await users.create(request.user, data, idempotency_key)
        return Response(created, status_code=201, headers=replayed_headers(replayed))

    @put(
        "/{user_id:str}",
        **_admin,
        operation_id="updateUser",
        summary="Change a user's role, status, name, email or password",
        responses=error_responses(400, 401, 404, 409, 413, 422),
    )
    async def update_user(
        self,
        request: Request[Principal, Any, Any],
        users: NamedDependency[UserService],
        user_id: FromPath[str],
        data: JSONBody[UpdateUserRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[UserOut]:
        """The members sent change. `status: inactive` refuses the user's tokens within seconds; `password` resets
        it. A user of an external realm takes its name, email and role from its tokens: only `status` changes."""
        updated, replayed = await users.update(request.user, user_id, data, idempotency_key)
        return Response(updated, headers=replayed_headers(replayed))

    @delete(
        "/{user_id:str}",
        **_admin,
        status_code=204,
        operation_id="deactivateUser",
        summary="Deactivate a user",
        responses={
            204: ResponseSpec(None, description="Deactivated (also when it was already)"),
            **error_responses(400, 401, 404, 422),
        },
    )
    async def deactivate_user(
        self,
        request: Request[Principal, Any, Any],
        users: NamedDependency[UserService],
        user_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[None]:
        """The user stays in the directory (tickets still name them) with `status: inactive`; its tokens are
        refused within seconds. `PUT` with `status: active` restores it."""
        _, replayed = await users.deactivate(request.user, user_id, idempotency_key)
        return Response(None, status_code=204, headers=replayed_headers(replayed))


class SignInController(Controller):
    path = "/auth"
    tags = ("identity",)

    @post(
        "/login",
        operation_id="signIn",
        summary="Sign in with email and password",
        **_signs_in,
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        sign_in: NamedDependency[SignInService],
        data: JSONBody[LoginRequest],
        tenant: TenantHeader = None,
    ) -> Response[LoginResponse]:
        """For users of the tenant's builtin realm. An unknown email, a wrong password and a deactivated user get
        the same 401 INVALID_CREDENTIALS; repeated failures for an account or from an address are 429 with
        Retry-After. Call the API with the token, `x-tenantid` and `realmname: <the builtin realm>`."""
        signed_in, counted = await sign_in.login(tenant, data, client_address(request))
        return Response(signed_in, headers=counted)

    @post(
        "/invitation",
        operation_id="acceptInvitation",
        summary="Accept an invitation: set a password and sign in",
        **_signs_in,
    )
    async def accept_invitation(
        self,
        request: Request[Any, Any, Any],
        sign_in: NamedDependency[SignInService],
        data: JSONBody[AcceptInvitationRequest],
        tenant: TenantHeader = None,
    ) -> Response[LoginResponse]:
        """With the token an admin was given when it added the user without a password (POST /users): sets the
        user's password, activates it and answers as POST /auth/login does. The token works once, for seven days,
        and no longer once an admin sets the user's status, password or email; otherwise 401 INVALID_INVITATION."""
        signed_in, counted = await sign_in.accept_invitation(tenant, data, client_address(request))
        return Response(signed_in, headers=counted)


def client_address(request: Request[Any, Any, Any]) -> str:
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"
