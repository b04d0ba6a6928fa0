"""Bringing the tenant table in line with the tenant files. Idempotent: unchanged files write nothing and notify
no one."""

from __future__ import annotations

import hashlib

from app.db.database import Database
from app.tenancy.model import TenantConfig, tenant_config_decoder, tenant_config_encoder
from app.tenancy.repository import TenantRepository


class TenantConflict(Exception):
    """A tenant file clashes with a different tenant already in the database."""


class TenantService:
    def __init__(self, db: Database, repository: TenantRepository) -> None:
        self._db = db
        self._repository = repository

    async def sync(self, configs: list[TenantConfig]) -> list[str]:
        """Insert new tenants and update changed ones in one transaction; return the slugs that changed."""
        changed: list[str] = []
        async with self._db.transaction():
            await self._repository.lock_for_sync()
            rows = await self._repository.list_all()
            existing = {row.id: row for row in rows}
            slugs = {row.slug: row.id for row in rows}
            # An issuer names exactly one realm: a second tenant claiming it would take over the first one's logins.
            synced = {config.id for config in configs}
            issuers = {
                realm.issuer: row.id
                for row in rows
                if row.id not in synced
                for realm in tenant_config_decoder.decode(row.config).realms
            }
            for config in configs:
                for realm in config.realms:
                    holder = issuers.get(realm.issuer)
                    if holder is not None:
                        raise TenantConflict(f"issuer {realm.issuer!r} already belongs to a realm of tenant {holder}")
                owner = slugs.get(config.slug)
                if owner is not None and owner != config.id:
                    raise TenantConflict(f"slug {config.slug!r} already belongs to tenant {owner}, not {config.id}")
                document = tenant_config_encoder.encode(config).decode()
                digest = hashlib.sha256(document.encode()).hexdigest()
                current = existing.get(config.id)
                if current is None:
                    await self._repository.insert(config, document, digest)
                elif current.config_hash != digest:
                    await self._repository.update(config, document, digest)
                else:
                    continue
                changed.append(config.slug)
            if changed:
                await self._repository.notify_changed()
        return changed
