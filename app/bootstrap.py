"""Bringing the database in line with the files: migrations, tenant files, ticket states, template ticket types;
and removing an offboarded tenant's rows.

Used by `python -m app serve`, `python -m app tenants sync|purge` and the tests, so all do the same thing.
"""

from __future__ import annotations

import datetime

from app.attachment.repository import AttachmentRepository
from app.comment.repository import CommentRepository
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
from app.v1.actors.repository import ActorNumberRepository


async def migrate(dsn: str) -> None:
    engine.configure(dsn)
    await engine.check_connection(dsn)
    await engine.migrate()


async def apply_tenants(
    dsn: str, tenants: list[TenantConfig], *, disable_missing: bool
) -> tuple[SyncResult, list[str]]:
    """Sync tenant rows (see TenantService.sync for `disable_missing`), then seed the enabled tenants' ticket states
    and template ticket types. Returns what the sync did and the seeded types."""
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
            CommentRepository(db).purge_tenant,
            TicketRepository(db).purge_tenant,
            IdempotencyRepository(db).purge_tenant,
            TicketTypeRepository(db).purge_tenant,
            TicketStateRepository(db).purge_tenant,
            ActorNumberRepository(db).purge_tenant,
        ]
        return await TenantService(db, TenantRepository(db)).purge(reference, purges, commit=commit)
    finally:
        await db.close()
