"""Bringing the database in line with the files: migrations, tenant files, ticket states, template ticket types;
and removing an offboarded tenant's rows.

Used by `python -m app serve`, `python -m app tenants sync|purge` and the tests, so all do the same thing.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os

from app.attachment.repository import AttachmentRepository
from app.comment.repository import CommentRepository
from app.config import Settings
from app.db import engine
from app.db.database import Database
from app.idempotency.repository import IdempotencyRepository
from app.idempotency.service import Idempotency
from app.tenancy.model import TenantConfig
from app.tenancy.repository import TenantRepository
from app.tenancy.service import PurgeResult, SyncResult, TenantService
from app.ticket.repository import TicketRepository
from app.ticket_state.cache import TicketStateCache
from app.ticket_state.repository import TicketStateRepository
from app.ticket_state.service import TicketStateService
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.repository import TicketTypeRepository
from app.ticket_type.service import TicketTypeService
from app.user.repository import UserRepository
from app.v1.actors.repository import ActorNumberRepository
from app.webhook.delivery import DeliveryPolicy, DeliveryWorker
from app.webhook.repository import WebhookRepository
from app.webhook.second_looks import SecondLooks
from app.webhook.service import WebhookService

log = logging.getLogger("app.bootstrap")


async def migrate(dsn: str) -> None:
    engine.configure(dsn)
    await engine.check_connection(dsn)
    await engine.migrate()


async def apply_tenants(
    dsn: str, tenants: list[TenantConfig], *, disable_missing: bool, settings: Settings | None = None
) -> tuple[SyncResult, list[str]]:
    """Sync tenant rows (see TenantService.sync for `disable_missing`), then seed the enabled tenants' ticket states
    and template ticket types, and bring the webhooks their files declare in line (secrets from the environment;
    `settings`: the WEBHOOK_* settings, the defaults when None). Returns what the sync did and the seeded types."""
    settings = settings or Settings()
    db = Database(dsn, min_size=1, max_size=2)
    await db.open()
    try:
        synced = await TenantService(db, TenantRepository(db)).sync(tenants, disable_missing=disable_missing)
        enabled = [tenant for tenant in tenants if not tenant.disabled]
        states = TicketStateRepository(db)
        types = TicketTypeRepository(db)
        # Seeding takes no Idempotency-Keys; the services need the object all the same.
        keys = Idempotency(db, IdempotencyRepository(db), datetime.timedelta(days=1))
        ticket_types = TicketTypeService(db, types, TicketTypeCache(types), states, keys)
        await TicketStateService(db, states, ticket_types, TicketStateCache(states), keys).seed(enabled)
        seeded = await ticket_types.seed_templates(enabled)
        hooks = WebhookRepository(db)
        webhooks = WebhookService(
            db,
            hooks,
            keys,
            allow_loopback=settings.webhook_allow_loopback,
            secret_overlap_seconds=settings.webhook_secret_overlap_seconds,
            horizon_seconds=settings.webhook_retry_horizon_seconds,
            second_looks=SecondLooks(hooks),  # never looked at: syncing declared subscriptions replays nothing
        )
        declared = await webhooks.sync_declared(enabled, os.environ)
        if declared:
            log.info("declared webhooks synced", extra={"webhooks": declared})
    finally:
        await db.close()
    return synced, seeded


async def purge_tenant(dsn: str, reference: str, *, commit: bool) -> PurgeResult:
    """Delete every row of a disabled tenant (its id or slug) in one transaction; without `commit`, only count
    them. Attachments go first, then comments, then the tickets they are on, then the types and states those
    reference, then the tenant row (the blobs of the attachments go with the running servers' next orphan sweep)."""
    db = Database(dsn, min_size=1, max_size=1)
    await db.open()
    try:
        purges = [
            AttachmentRepository(db).purge_tenant,
            WebhookRepository(db).purge_tenant,
            CommentRepository(db).purge_tenant,
            TicketRepository(db).purge_tenant,
            IdempotencyRepository(db).purge_tenant,
            TicketTypeRepository(db).purge_tenant,
            TicketStateRepository(db).purge_tenant,
            UserRepository(db).purge_tenant,
            ActorNumberRepository(db).purge_tenant,
        ]
        return await TenantService(db, TenantRepository(db)).purge(reference, purges, commit=commit)
    finally:
        await db.close()


async def deliver_webhooks(settings: Settings, dsn: str) -> None:
    """`python -m app webhooks`: dispatch and deliver webhooks (as every service process does unless
    WEBHOOK_DELIVERY=false) until cancelled."""
    worker = DeliveryWorker.with_own_pool(dsn, DeliveryPolicy.from_settings(settings))
    await worker.start()
    try:
        log.info("delivering webhooks", extra={"concurrency": settings.webhook_concurrency})
        await asyncio.Event().wait()
    finally:
        await worker.stop()
