"""Bringing the database in line with the files: migrations, tenant files, template ticket types.

Used by `python -m app serve`, `python -m app tenants sync` and the tests, so all three do the same thing.
"""

from __future__ import annotations

from app.db import engine
from app.tenancy.model import TenantConfig
from app.tenancy.repository import sync_tenants
from app.ticket_state.repository import TicketStateRepository
from app.ticket_state.service import TicketStateService
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.repository import TicketTypeRepository
from app.ticket_type.service import TicketTypeService


async def migrate(dsn: str) -> None:
    engine.configure(dsn)
    await engine.check_connection(dsn)
    await engine.migrate()


async def apply_tenants(dsn: str, tenants: list[TenantConfig]) -> tuple[list[str], list[str]]:
    """Sync tenant rows, then seed their ticket states and template ticket types.
    Returns (changed tenants, seeded types)."""
    changed = await sync_tenants(tenants)
    pool = await engine.create_pool(dsn, 1, 2)
    try:
        states = TicketStateRepository(pool)
        await TicketStateService(states).seed(tenants)
        repository = TicketTypeRepository(pool)
        seeded = await TicketTypeService(repository, TicketTypeCache(repository), states).seed_templates(tenants)
    finally:
        await pool.close()
    return changed, seeded
