"""Bringing the database in line with the files: migrations, tenant files, ticket states, template ticket types.

Used by `python -m app serve`, `python -m app tenants sync` and the tests, so all three do the same thing.
"""

from __future__ import annotations

from app.db import engine
from app.db.database import Database
from app.tenancy.model import TenantConfig
from app.tenancy.repository import TenantRepository
from app.tenancy.service import TenantService
from app.ticket_state.cache import TicketStateCache
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
    db = Database(dsn, min_size=1, max_size=2)
    await db.open()
    try:
        changed = await TenantService(db, TenantRepository(db)).sync(tenants)
        states = TicketStateRepository(db)
        types = TicketTypeRepository(db)
        ticket_types = TicketTypeService(db, types, TicketTypeCache(types), states)
        await TicketStateService(db, states, ticket_types, TicketStateCache(states)).seed(tenants)
        seeded = await ticket_types.seed_templates(tenants)
    finally:
        await db.close()
    return changed, seeded
