"""CORS: browsers may call the API from the origins a tenant lists in its file (`[cors] allowed_origins`).

A preflight (OPTIONS with Origin and Access-Control-Request-Method) carries no token and no x-tenantid, so it is
allowed when any enabled tenant allows the origin. The application's own OPTIONS handler answers it (204 with Allow,
or 404 for an unknown path); this layer adds the CORS headers to a 2xx answer. Any other request gets
Access-Control-Allow-Origin only when the tenant it names in x-tenantid is enabled and allows its Origin, error
responses included, so that the page can show the caller a 401 or 404. Bearer tokens authenticate cross-origin calls:
credentials (the v1 session cookie, app/auth/session.py) are never allowed, so sessions stay same-origin.

Requests without an Origin header (every client that is not a browser) pass through after that one header lookup.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.tenancy.registry import TenantRegistry

# What a page may send: the headers of the v2 contract and of this service.
ALLOWED_HEADERS = (
    b"authorization, content-type, x-tenantid, realmname, issupportrequest, idempotency-key, if-none-match, "
    b"x-request-id, range, if-range"
)
# What a page may read besides the CORS-safelisted response headers.
EXPOSED_HEADERS = (
    b"etag, idempotent-replayed, retry-after, www-authenticate, allow, x-request-id, location, content-disposition, "
    b"content-range, accept-ranges"
)
# How long a browser may reuse a preflight's answer: also how long a disabled tenant's origin may keep passing one.
MAX_AGE_SECONDS = b"600"


class CorsMiddleware:
    def __init__(self, app: ASGIApp, registry: TenantRegistry) -> None:
        self.app = app
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        # The whole cost for a request without Origin: one pass over its headers (a plain loop, no generator).
        origin = None
        for name, value in headers:
            if name == b"origin":
                origin = value
                break
        if origin is None:
            await self.app(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in headers
        )
        if preflight:
            allowed = self._registry.some_tenant_allows_origin(origin)
        else:
            tenant = next((value for name, value in headers if name == b"x-tenantid"), None)
            allowed = tenant is not None and self._registry.tenant_allows_origin(tenant, origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = list(message.get("headers", ()))
                # Whether CORS headers appear depends on Origin, so a cache must key on it, allowed or not.
                _add_vary_origin(response_headers)
                if allowed and not preflight:
                    response_headers += [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-expose-headers", EXPOSED_HEADERS),
                    ]
                elif allowed and 200 <= message["status"] < 300:
                    methods = next((value for name, value in response_headers if name.lower() == b"allow"), b"")
                    response_headers += [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-allow-methods", methods),
                        (b"access-control-allow-headers", ALLOWED_HEADERS),
                        (b"access-control-max-age", MAX_AGE_SECONDS),
                    ]
                message["headers"] = response_headers
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _add_vary_origin(headers: list[tuple[bytes, bytes]]) -> None:
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            headers[index] = (name, value + b", Origin")
            return
    headers.append((b"vary", b"Origin"))
