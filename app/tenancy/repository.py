"""The tenant table. Sync is idempotent: unchanged files write nothing and notify no one."""

from __future__ import annotations

import hashlib

from app.db.tables import Tenant
from app.tenancy.model import TenantConfig, tenant_config_decoder, tenant_config_encoder

TENANTS_CHANGED_CHANNEL = "tenants_changed"


class TenantConflict(Exception):
    """A tenant file clashes with a different tenant already in the database."""


async def sync_tenants(configs: list[TenantConfig]) -> list[str]:
    """Insert new tenants and update changed ones in one transaction; return the slugs that changed."""
    changed: list[str] = []
    async with Tenant._meta.db.transaction():
        # Serialise concurrent syncs (two processes starting at once) instead of failing one on a unique key.
        await Tenant.raw("SELECT pg_advisory_xact_lock(hashtext('tenant_sync'))")
        rows = await Tenant.select(Tenant.id, Tenant.slug, Tenant.config_hash, Tenant.config)
        existing = {row["id"]: row for row in rows}
        slugs = {row["slug"]: row["id"] for row in rows}
        # An issuer names exactly one realm: a second tenant claiming it would take over the first one's logins.
        synced = {config.id for config in configs}
        issuers = {
            realm.issuer: row["id"]
            for row in rows
            if row["id"] not in synced
            for realm in tenant_config_decoder.decode(row["config"]).realms
        }
        for config in configs:
            for realm in config.realms:
                holder = issuers.get(realm.issuer)
                if holder is not None:
                    raise TenantConflict(f"issuer {realm.issuer!r} already belongs to a realm of tenant {holder}")
            document = tenant_config_encoder.encode(config).decode()
            digest = hashlib.sha256(document.encode()).hexdigest()
            owner = slugs.get(config.slug)
            if owner is not None and owner != config.id:
                raise TenantConflict(f"slug {config.slug!r} already belongs to tenant {owner}, not {config.id}")
            current = existing.get(config.id)
            if current is None:
                await Tenant.insert(
                    Tenant(id=config.id, slug=config.slug, name=config.name, config=document, config_hash=digest)
                )
            elif current["config_hash"] != digest:
                await Tenant.update(
                    {
                        Tenant.slug: config.slug,
                        Tenant.name: config.name,
                        Tenant.config: document,
                        Tenant.config_hash: digest,
                        Tenant.updated_at: Tenant.updated_at.default.python(),
                    }
                ).where(Tenant.id == config.id)
            else:
                continue
            changed.append(config.slug)
        if changed:
            # Delivered at commit: every worker reloads its registry (see TenantRegistry.reload).
            await Tenant.raw(f"NOTIFY {TENANTS_CHANGED_CHANNEL}")
    return changed


async def load_tenants() -> list[TenantConfig]:
    rows = await Tenant.select(Tenant.config).order_by(Tenant.slug)
    return [tenant_config_decoder.decode(row["config"]) for row in rows]
