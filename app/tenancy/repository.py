"""SQL for the tenant table (a reference table: every other table's tenant_id points at its id)."""

from __future__ import annotations

import uuid

import msgspec

from app.db.database import Database, select_list
from app.tenancy.model import TenantConfig, tenant_config_decoder

TENANTS_CHANGED_CHANNEL = "tenants_changed"


class TenantRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    slug: str
    # The stored configuration document (JSON text) and its hash, which tells whether a file changed.
    config: str
    config_hash: str


_COLUMNS = select_list(TenantRow, config="config::text")


class ConfigIfChanged(msgspec.Struct, frozen=True):
    config_hash: str
    # The document, unless its hash is the one the caller knows.
    config: str | None


class TenantRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lock_for_sync(self) -> None:
        """Held until commit: concurrent syncs (two processes starting at once) run one after the other."""
        await self._db.execute("SELECT pg_advisory_xact_lock(hashtext('tenant_sync'))")

    async def list_all(self) -> list[TenantRow]:
        return await self._db.fetch_all(TenantRow, f"SELECT {_COLUMNS} FROM tenant ORDER BY slug")

    async def get(self, tenant_id: uuid.UUID) -> TenantRow | None:
        return await self._db.fetch_one(TenantRow, f"SELECT {_COLUMNS} FROM tenant WHERE id = $1", tenant_id)

    async def config_if_changed(self, tenant_id: uuid.UUID, known_hash: str | None) -> ConfigIfChanged | None:
        """The tenant's configuration hash, and its document only if that hash is not `known_hash`."""
        return await self._db.fetch_one(
            ConfigIfChanged,
            "SELECT config_hash, CASE WHEN config_hash = $2 THEN NULL ELSE config::text END AS config "
            "FROM tenant WHERE id = $1",
            tenant_id,
            known_hash,
        )

    async def get_by_slug(self, slug: str) -> TenantRow | None:
        return await self._db.fetch_one(TenantRow, f"SELECT {_COLUMNS} FROM tenant WHERE slug = $1", slug)

    async def configs(self) -> list[TenantConfig]:
        return [tenant_config_decoder.decode(row.config) for row in await self.list_all()]

    async def insert(self, config: TenantConfig, document: str, digest: str) -> None:
        await self._db.execute(
            "INSERT INTO tenant (id, slug, name, config, config_hash) VALUES ($1, $2, $3, $4::jsonb, $5)",
            config.id,
            config.slug,
            config.name,
            document,
            digest,
        )

    async def update(self, config: TenantConfig, document: str, digest: str) -> None:
        await self._db.execute(
            "UPDATE tenant SET slug = $2, name = $3, config = $4::jsonb, config_hash = $5, updated_at = now() "
            "WHERE id = $1",
            config.id,
            config.slug,
            config.name,
            document,
            digest,
        )

    async def delete(self, tenant_id: uuid.UUID) -> int:
        """Remove the tenant row (its rows in the other tables must be gone already); returns 1, or 0 if absent."""
        return await self._db.execute("DELETE FROM tenant WHERE id = $1", tenant_id)

    async def notify_changed(self) -> None:
        # Delivered at commit: every worker reloads its registry (see TenantRegistry.reload).
        await self._db.execute(f"NOTIFY {TENANTS_CHANGED_CHANNEL}")
