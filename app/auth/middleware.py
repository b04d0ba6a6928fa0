"""Authenticates every request on the API router and enforces the route's declared requirement.

Applied to the router as a whole, so a new route is authenticated without opting in; health and docs live
outside that router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from app.auth.authenticator import Authenticator
from app.auth.principal import Principal
from app.auth.requirements import REQUIREMENT, Requirement
from app.auth.session import CSRF_HEADER, check_csrf, session_from_cookies

# Called with every authenticated principal before its route runs (the users directory: a user's first call adds
# them, and a deactivated user or a revoked client is refused); raises an AppError to refuse the request.
Admission = Callable[[Principal], Awaitable[None]]

_AUTH_HEADERS = frozenset({b"authorization", b"realmname", b"x-tenantid", b"issupportrequest"})
_SESSION_HEADERS = _AUTH_HEADERS | {CSRF_HEADER.encode()}


class AuthenticationMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        admit: Admission,
        *,
        tenant_from_token: bool = False,
        session_cookie: bool = False,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.admit = admit
        # The v1 surface: tenant and realm from the token when the headers are absent (Authenticator.authenticate),
        # and the token from the session cookie when there is no Authorization header (app/auth/session.py).
        self.tenant_from_token = tenant_from_token
        self.session_cookie = session_cookie
        self._wanted = _SESSION_HEADERS if session_cookie else _AUTH_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and not _is_options_answer(scope):
            headers = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in scope["headers"]
                if name in self._wanted
            }
            if self.session_cookie and "authorization" not in headers:
                # Every Cookie header: HTTP/2 clients may split the cookies over several.
                cookies = [value.decode("latin-1") for name, value in scope["headers"] if name == b"cookie"]
                session = session_from_cookies(cookies)
                if session is not None:
                    # Before the token is looked at: a forged write is refused whatever the cookie holds.
                    check_csrf(scope["method"], session, headers.get(CSRF_HEADER))
                    headers["authorization"] = f"Bearer {session}"
            principal = await self.authenticator.authenticate(headers, tenant_from_token=self.tenant_from_token)
            await self.admit(principal)
            scope["user"] = principal
            requirement = scope["route_handler"].opt.get(REQUIREMENT)
            if not isinstance(requirement, Requirement):
                raise RuntimeError(f"route {scope['path']} declares no requirement (opt=requires(...))")
            requirement.check(principal)
        await self.app(scope, receive, send)


def _is_options_answer(scope: Scope) -> bool:
    """Litestar's own OPTIONS handler (204 with Allow) declares no requirement and reveals nothing but the route's
    methods, the same for every caller; a CORS preflight carries no token. An OPTIONS route of ours would declare a
    requirement and be authenticated like any other."""
    return scope.get("method") == "OPTIONS" and REQUIREMENT not in scope["route_handler"].opt


def complete_options_answers(app: Litestar) -> None:
    """Litestar (2.25) builds a route's OPTIONS handler when the route's first handler is registered and keeps it
    as the route grows, so its Allow names only that first method (OPTIONS /ticket said "OPTIONS, POST", not GET).
    The route object that handler answers from is given the complete route's methods, once, at start-up."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        answering = route.route_handler_map["OPTIONS"][0]
        for cell in getattr(answering.fn, "__closure__", None) or ():
            if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                cell.cell_contents.methods = route.methods
