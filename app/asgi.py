"""create_app(): the one place where the service is wired together."""

from __future__ import annotations

import ctypes
import datetime
import gc
import multiprocessing
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.process import BaseProcess
from typing import TypeVar

import httpx
from litestar import Litestar, Router
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from app.attachment.controller import AttachmentController, TicketAttachmentController, upload_body_limit
from app.attachment.repository import AttachmentRepository
from app.attachment.service import AttachmentService, AttachmentStore
from app.attachment.storage import open_store
from app.attachment.sweeps import OrphanBlobSweep
from app.auth.authenticator import Authenticator
from app.auth.controller import MeController
from app.auth.issuer import TokenIssuer
from app.auth.middleware import AuthenticationMiddleware, complete_options_answers
from app.comment.controller import CommentController
from app.comment.repository import CommentRepository
from app.comment.service import CommentService
from app.config import Settings, load_settings
from app.db.database import Database
from app.db.notifications import NotificationListener
from app.docs import docs_router, render_plugins
from app.errors import EXCEPTION_HANDLERS
from app.health.controller import HealthController
from app.idempotency.repository import IdempotencyRepository
from app.idempotency.service import Idempotency
from app.json_body import StrictJsonRequest
from app.limits import BodySizeLimitMiddleware
from app.observability import RequestContextMiddleware, configure_logging
from app.openapi import StructSchemaPlugin
from app.query_parameters import UnknownQueryParametersMiddleware
from app.ratelimit.limiter import RateLimiter
from app.ratelimit.middleware import RateLimitMiddleware
from app.ratelimit.openapi import document_rate_limits
from app.ratelimit.store import RedisBuckets
from app.tenancy.cors import CorsMiddleware
from app.tenancy.model import AttachmentLimits, RateLimits
from app.tenancy.registry import TenantRegistry
from app.tenancy.repository import TENANTS_CHANGED_CHANNEL, TenantRepository
from app.ticket.controller import TicketController
from app.ticket.includes import TicketIncludes
from app.ticket.repository import TicketRepository
from app.ticket.service import TicketService
from app.ticket.sweeps import ExpiredIdempotencyKeySweep, PendingCloseTimer
from app.ticket_state.cache import TicketStateCache
from app.ticket_state.controller import TicketStateController
from app.ticket_state.repository import TICKET_STATES_CHANGED_CHANNEL, TicketStateRepository
from app.ticket_state.service import TicketStateService
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.controller import TicketTypeController
from app.ticket_type.repository import TICKET_TYPES_CHANGED_CHANNEL, TicketTypeRepository
from app.ticket_type.service import TicketTypeService
from app.user.controller import SignInController, UserController
from app.user.passwords import PasswordHasher
from app.user.realm_controller import RealmController
from app.user.repository import ClientRepository, LoginFailureRepository, UserRepository
from app.user.service import UserService
from app.user.signin import SignInService
from app.user.throttle import PostgresLoginThrottle, QuietLoginFailureSweep
from app.v1.actors.repository import ActorNumberRepository
from app.v1.errors import V1_EXCEPTION_HANDLERS
from app.v1.permissions import SeedPermissions
from app.v1.platform.controller import V1PlatformTicketController, V1PlatformUserController, V1SignInController
from app.v1.platform.service import PlatformService
from app.v1.routes import V1_PATH
from app.v1.tenant_mapping import TenantMapping
from app.v1.ticket_states.controller import V1TicketStateController
from app.v1.ticket_states.service import V1TicketStateService
from app.v1.tickets.controller import V1TicketController
from app.v1.tickets.service import V1TicketService
from app.webhook.controller import WebhookController
from app.webhook.delivery import DeliveryPolicy, DeliveryWorker
from app.webhook.repository import WebhookRepository
from app.webhook.second_looks import SecondLooks, SecondLookSweep
from app.webhook.service import WebhookService

API_PREFIX = "/api/v2/ticketing"
# Expired Idempotency-Keys are already treated as unused; the sweep only keeps the table small.
IDEMPOTENCY_SWEEP_INTERVAL_SECONDS = 300.0
# Sign-in failure counts quiet for 15 minutes count for nothing; the sweep only keeps the table small.
LOGIN_FAILURE_SWEEP_INTERVAL_SECONDS = 300.0
PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>

Service = TypeVar("Service")


# The youngest generation is collected after this many more allocations than deallocations of container objects
# (CPython's default is 700). A request allocates a few hundred short-lived containers that reference counting frees;
# at 700 the cyclic collector ran every request or two and, walking the young objects each time, cost 12-15 µs a
# request and most of the tail latency. Measured with `make bench` (see README, Performance).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc_for_serving() -> None:
    """Once the app has started: move everything alive now (modules, the app, caches, pools) out of the collector's
    view for good (gc.freeze: they live as long as the process, and walking them in every old-generation collection is
    pure cost), and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


def provide(service: Service) -> Provide:
    """A dependency that hands out one long-lived object. The provider takes no parameters, so Litestar does not
    validate a signature on each request, and its value is cached after the first call."""

    def dependency() -> Service:
        return service

    return Provide(dependency, sync_to_thread=False, use_cache=True)


def worker_app() -> RequestContextMiddleware:
    """The ASGI factory each server worker process calls: process-wide logging first, then the app."""
    settings = load_settings()
    configure_logging(settings.log_level)
    parent = multiprocessing.parent_process()
    if parent is not None:  # one of WORKERS > 1 processes, not `serve` itself
        end_with_parent(parent)
    return create_app(settings, tune_gc=True)


def end_with_parent(parent: BaseProcess) -> None:
    """Have this worker process get SIGTERM, and so shut down, when `serve` ends, even by kill -9: orphaned workers
    would keep serving, holding the port (the next `make run` could not listen) and the database. Linux only."""
    if sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent.pid:  # `serve` ended before the signal was asked for
        raise SystemExit("the serve process is gone")


def rate_limit_buckets(settings: Settings) -> RedisBuckets | None:
    """Where rate limits count, or None when they are off."""
    if not settings.rate_limits_enabled:
        return None
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set; start the service with `python -m app serve`")
    return RedisBuckets(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)


def create_app(settings: Settings | None = None, *, tune_gc: bool = False) -> RequestContextMiddleware:
    """Build the ASGI application. The database URL must be known (the CLI resolves the embedded cluster).
    `tune_gc`: a server process's own app (tune_gc_for_serving once started); not for apps inside other programs,
    such as the tests, whose objects it would freeze."""
    settings = settings or load_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; start the service with `python -m app serve`")
    db = Database(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        acquire_timeout=settings.db_acquire_timeout_seconds,
    )

    http = httpx.AsyncClient(headers={"user-agent": "ticketing-jwks-fetcher"})
    registry = TenantRegistry(TenantRepository(db).configs)
    buckets = rate_limit_buckets(settings)

    def rate_limits(tenant_id: uuid.UUID) -> RateLimits | None:
        tenant = registry.tenant(tenant_id)
        return tenant.config.rate_limits if tenant is not None else None

    limiter = RateLimiter(buckets, rate_limits) if buckets is not None else None
    authenticator = Authenticator(
        registry,
        http,
        leeway_seconds=settings.jwt_leeway_seconds,
        cache_size=settings.token_cache_size,
        jwks_min_refresh_seconds=settings.jwks_min_refresh_seconds,
        jwks_timeout_seconds=settings.jwks_fetch_timeout_seconds,
    )
    idempotency_key_ttl = datetime.timedelta(seconds=settings.idempotency_key_ttl_seconds)
    key_repository = IdempotencyRepository(db)
    keys = Idempotency(db, key_repository, idempotency_key_ttl)
    state_repository = TicketStateRepository(db)
    type_repository = TicketTypeRepository(db)
    type_cache = TicketTypeCache(type_repository)
    ticket_types = TicketTypeService(db, type_repository, type_cache, state_repository, keys)
    state_cache = TicketStateCache(state_repository)
    ticket_states = TicketStateService(db, state_repository, ticket_types, state_cache, keys)
    ticket_repository = TicketRepository(db)
    blobs = open_store(settings)

    def attachment_limits(tenant_id: uuid.UUID) -> AttachmentLimits:
        tenant = registry.tenant(tenant_id)
        return tenant.config.attachments if tenant is not None else AttachmentLimits()

    attachment_store = AttachmentStore(
        db,
        AttachmentRepository(db),
        blobs,
        attachment_limits,
        download_path=f"{API_PREFIX}/attachments/",
        orphan_grace=datetime.timedelta(seconds=settings.attachment_orphan_grace_seconds),
    )
    # What GET /ticket/{objectId}?include= embeds comes from the packages above app.ticket, registered below.
    ticket_includes = TicketIncludes()
    tickets = TicketService(
        db,
        ticket_repository,
        type_cache,
        state_repository,
        state_cache,
        keys,
        includes=ticket_includes,
        attachments=attachment_store,
    )
    attachments = AttachmentService(attachment_store, tickets, keys)
    user_repository, client_repository, passwords = (
        UserRepository(db),
        ClientRepository(db),
        PasswordHasher(settings.password_hash_profile),
    )
    users = UserService(db, user_repository, client_repository, registry, passwords, keys)
    comments = CommentService(db, CommentRepository(db), tickets, keys, attachment_store, users)
    ticket_includes.register("comments", comments.embedded)
    ticket_includes.register("attachments", attachments.embedded)
    ticket_includes.check_complete()
    webhook_repository = WebhookRepository(db)
    # Every service process delivers webhooks too, unless `python -m app webhooks` processes do it instead. It has
    # connections of its own, so deliveries never wait for, nor make requests wait for, the requests' pool.
    webhook_worker = (
        DeliveryWorker.with_own_pool(settings.database_url, DeliveryPolicy.from_settings(settings))
        if settings.webhook_delivery
        else None
    )
    wake_webhook_worker = webhook_worker.wake if webhook_worker else lambda: None
    webhook_second_looks = SecondLooks(webhook_repository)
    webhooks = WebhookService(
        db,
        webhook_repository,
        keys,
        allow_loopback=settings.webhook_allow_loopback,
        secret_overlap_seconds=settings.webhook_secret_overlap_seconds,
        horizon_seconds=settings.webhook_retry_horizon_seconds,
        second_looks=webhook_second_looks,
        queued=wake_webhook_worker,
    )
    login_failures = LoginFailureRepository(db)
    sign_in = SignInService(
        db,
        user_repository,
        client_repository,
        registry,
        passwords,
        TokenIssuer(settings.data_dir, settings.builtin_token_ttl_seconds),
        PostgresLoginThrottle(db, login_failures),
        free_failures_per_account=settings.login_free_failures_per_account,
        free_failures_per_address=settings.login_free_failures_per_address,
        limiter=limiter,
    )
    sweeps = [
        PendingCloseTimer(ticket_repository, settings.pending_close_interval_seconds),
        ExpiredIdempotencyKeySweep(key_repository, idempotency_key_ttl, IDEMPOTENCY_SWEEP_INTERVAL_SECONDS),
        OrphanBlobSweep(attachment_store, settings.attachment_sweep_interval_seconds),
        QuietLoginFailureSweep(login_failures, key_repository.all_tenants, LOGIN_FAILURE_SWEEP_INTERVAL_SECONDS),
        SecondLookSweep(webhook_second_looks, wake_webhook_worker),
    ]
    listener = NotificationListener(
        settings.database_url,
        {
            TENANTS_CHANGED_CHANNEL: registry.reload,
            TICKET_TYPES_CHANGED_CHANNEL: type_cache.on_change,
            TICKET_STATES_CHANGED_CHANNEL: state_cache.on_change,
        },
    )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await db.open()
        await blobs.open()
        if buckets is not None:
            await buckets.open()
        try:
            await registry.reload()
            listener.start()
            for sweep in sweeps:
                sweep.start()
            if webhook_worker is not None:
                await webhook_worker.start()
            if tune_gc:
                tune_gc_for_serving()
            yield
        finally:
            if webhook_worker is not None:
                await webhook_worker.stop()
            for sweep in sweeps:
                await sweep.stop()
            await listener.stop()
            await http.aclose()
            await blobs.close()
            if buckets is not None:
                await buckets.close()
            await db.close()

    api = Router(
        path=API_PREFIX,
        route_handlers=[
            MeController,
            TicketTypeController,
            TicketController,
            TicketStateController,
            CommentController,
            TicketAttachmentController,
            AttachmentController,
            WebhookController,
            UserController,
        ],
        dependencies={
            "ticket_types": provide(ticket_types),
            "tickets": provide(tickets),
            "ticket_states": provide(ticket_states),
            "comments": provide(comments),
            # Not "attachments": Litestar would take a body member of that name (a create's inline files) for this
            # dependency when it reports a validation error, and answer 500 instead of 400.
            "attachment_service": provide(attachments),
            "webhooks": provide(webhooks),
            "users": provide(users),
        },
        # Authentication first: a caller without access learns nothing about a route's parameters.
        middleware=[
            DefineMiddleware(AuthenticationMiddleware, authenticator=authenticator, admit=users.admit),
            *([DefineMiddleware(RateLimitMiddleware, limiter=limiter)] if limiter is not None else []),
            UnknownQueryParametersMiddleware,
        ],
        security=[{"BearerToken": []}],
    )
    # Sign-in and a builtin realm's token, key and discovery endpoints: called without a token.
    public_api = Router(path=API_PREFIX, route_handlers=[SignInController])
    # The seeds' v1 paths: the same services, the same authentication (tenant and realm from the token when the
    # headers are absent), the seeds' own error envelopes.
    tenant_mapping = TenantMapping(registry, type_cache)
    v1 = Router(
        path=V1_PATH,
        route_handlers=[
            V1TicketController,
            V1TicketStateController,
            V1PlatformTicketController,
            V1PlatformUserController,
        ],
        dependencies={
            "v1_tickets": provide(V1TicketService(tickets, tenant_mapping, keys)),
            "v1_states": provide(V1TicketStateService(ticket_states, ActorNumberRepository(db))),
            "v1_platform": provide(
                PlatformService(db, tickets, comments, attachments, users, state_cache, tenant_mapping, keys)
            ),
        },
        before_request=SeedPermissions(registry).check_route,
        middleware=[
            DefineMiddleware(
                AuthenticationMiddleware,
                authenticator=authenticator,
                admit=users.admit,
                tenant_from_token=True,
                session_cookie=True,
            ),
            *([DefineMiddleware(RateLimitMiddleware, limiter=limiter)] if limiter is not None else []),
            UnknownQueryParametersMiddleware,
        ],
        exception_handlers=V1_EXCEPTION_HANDLERS,
        security=[{"BearerToken": []}],
    )
    # Seed 004's sign-in: called without a token.
    v1_public = Router(path=V1_PATH, route_handlers=[V1SignInController])
    litestar = Litestar(
        route_handlers=[HealthController, api, public_api, RealmController, v1, v1_public],
        dependencies={"db": provide(db), "sign_in": provide(sign_in)},
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        request_class=StrictJsonRequest,
        # Wire types documented by msgspec, which also decodes them (see app/openapi.py).
        plugins=[StructSchemaPlugin()],
        openapi_config=OpenAPIConfig(
            title="Ticketing API",
            version="2.0.0",
            description="Multi-tenant v2 ticketing service. Every /api/v2 route needs a Bearer JWT plus the "
            "x-tenantid and realmname headers.",
            openapi_router=docs_router(),
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
        ),
        logging_config=None,
    )
    complete_options_answers(litestar)
    document_rate_limits(litestar.openapi_schema, API_PREFIX)
    return RequestContextMiddleware(
        CorsMiddleware(
            BodySizeLimitMiddleware(litestar, settings.max_body_bytes, upload_body_limit(API_PREFIX, registry)),
            registry,
        )
    )
