"""create_app(): the one place where the service is wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import HeaderParameter

from app.auth.authenticator import Authenticator
from app.auth.controller import MeController
from app.auth.middleware import AuthenticationMiddleware
from app.config import Settings, load_settings
from app.db import engine
from app.db.notifications import NotificationListener
from app.errors import EXCEPTION_HANDLERS
from app.health.controller import HealthController
from app.limits import BodySizeLimitMiddleware
from app.observability import RequestContextMiddleware, configure_logging
from app.tenancy.registry import TenantRegistry
from app.tenancy.repository import TENANTS_CHANGED_CHANNEL
from app.ticket.controller import TicketController
from app.ticket.pending_close import PendingCloseTimer
from app.ticket.repository import TicketRepository
from app.ticket.service import TicketService
from app.ticket_state.controller import TicketStateController
from app.ticket_state.repository import TicketStateRepository
from app.ticket_state.service import TicketStateService
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.controller import TicketTypeController
from app.ticket_type.repository import TICKET_TYPES_CHANGED_CHANNEL, TicketTypeRepository
from app.ticket_type.service import TicketTypeService

API_PREFIX = "/api/v2/ticketing"

# Documented on every API route; the authentication middleware enforces them before any handler runs.
API_HEADERS = {
    "x_tenantid": HeaderParameter(
        annotation=str,
        name="x-tenantid",
        required=True,
        description="UUID of the tenant; must equal the token's tenant claim",
    ),
    "realmname": HeaderParameter(
        annotation=str, name="realmname", required=True, description="Name of the realm that issued the token"
    ),
    "issupportrequest": HeaderParameter(
        annotation=bool,
        name="issupportrequest",
        default=False,
        required=False,
        description="true marks a support request; honoured only for tokens with the tenant's support role",
    ),
}


def _ticket_type_service(state: State) -> TicketTypeService:
    service: TicketTypeService = state.ticket_type_service
    return service


def _ticket_service(state: State) -> TicketService:
    service: TicketService = state.ticket_service
    return service


def _state_service(state: State) -> TicketStateService:
    service: TicketStateService = state.state_service
    return service


def worker_app() -> RequestContextMiddleware:
    """The ASGI factory each server worker process calls: process-wide logging first, then the app."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None) -> RequestContextMiddleware:
    """Build the ASGI application. The database URL must be known (the CLI resolves the embedded cluster)."""
    settings = settings or load_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; start the service with `python -m app serve`")
    database_url = settings.database_url
    engine.configure(database_url)

    http = httpx.AsyncClient(headers={"user-agent": "ticketing-jwks-fetcher"})
    registry = TenantRegistry()
    authenticator = Authenticator(
        registry,
        http,
        leeway_seconds=settings.jwt_leeway_seconds,
        cache_size=settings.token_cache_size,
        jwks_min_refresh_seconds=settings.jwks_min_refresh_seconds,
        jwks_timeout_seconds=settings.jwks_fetch_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await engine.create_pool(database_url, settings.db_pool_min, settings.db_pool_max)
        app.state.pool = pool
        type_repository = TicketTypeRepository(pool)
        type_cache = TicketTypeCache(type_repository)
        state_repository = TicketStateRepository(pool)
        app.state.ticket_type_service = TicketTypeService(type_repository, type_cache, state_repository)
        ticket_repository = TicketRepository(pool)
        app.state.ticket_service = TicketService(ticket_repository, type_cache, state_repository)
        timer = PendingCloseTimer(ticket_repository, settings.pending_close_interval_seconds)
        app.state.state_service = TicketStateService(state_repository)
        listener = NotificationListener(
            database_url,
            {TENANTS_CHANGED_CHANNEL: registry.reload, TICKET_TYPES_CHANGED_CHANNEL: type_cache.on_change},
        )
        try:
            await registry.reload()
            listener.start()
            timer.start()
            yield
        finally:
            await timer.stop()
            await listener.stop()
            await http.aclose()
            await pool.close()

    api = Router(
        path=API_PREFIX,
        route_handlers=[MeController, TicketTypeController, TicketController, TicketStateController],
        dependencies={
            "ticket_types": Provide(_ticket_type_service, sync_to_thread=False),
            "tickets": Provide(_ticket_service, sync_to_thread=False),
            "states": Provide(_state_service, sync_to_thread=False),
        },
        middleware=[DefineMiddleware(AuthenticationMiddleware, authenticator=authenticator)],
        parameters=API_HEADERS,
        security=[{"BearerToken": []}],
    )
    litestar = Litestar(
        route_handlers=[HealthController, api],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Ticketing API",
            version="2.0.0",
            description="Multi-tenant v2 ticketing service. Every /api/v2 route needs a Bearer JWT plus the "
            "x-tenantid and realmname headers.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
        ),
        logging_config=None,
    )
    return RequestContextMiddleware(BodySizeLimitMiddleware(litestar, settings.max_body_bytes))
