"""Bringing the tenant table in line with the tenant files, and removing an offboarded tenant's rows.

Sync is idempotent: unchanged files write nothing and notify no one. A tenant whose file is gone (or says
`disabled = true`) is disabled, never deleted: its rows stay until `purge`, and restoring the file enables it again.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from app.db.database import Database
from app.tenancy.model import TenantConfig, tenant_config_decoder, tenant_config_encoder
from app.tenancy.repository import TenantRepository, TenantRow

log = logging.getLogger("app.tenancy")

# Deletes every row of one tenant from the tables a feature owns; returns the rows removed per table.
TenantRowsPurge = Callable[[uuid.UUID], Awaitable[dict[str, int]]]


class TenantConflict(Exception):
    """A tenant file clashes with a different tenant already in the database."""


class PurgeRefused(Exception):
    """The tenant to purge is unknown, or still enabled. Nothing was removed."""


class SyncResult(msgspec.Struct, frozen=True):
    """What a sync did, by tenant slug."""

    # Rows inserted or updated, the disabled and enabled ones below included.
    changed: list[str]
    # Enabled before, disabled now: their file is gone, or says `disabled = true`.
    disabled: list[str]
    # Disabled before, enabled again.
    enabled: list[str]


class PurgeResult(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    slug: str
    # Rows removed per table, in the order they were deleted.
    removed: dict[str, int]
    committed: bool


class _DryRun(Exception):
    def __init__(self, result: PurgeResult) -> None:
        super().__init__()
        self.result = result


class TenantService:
    def __init__(self, db: Database, repository: TenantRepository) -> None:
        self._db = db
        self._repository = repository

    async def sync(self, configs: list[TenantConfig], *, disable_missing: bool) -> SyncResult:
        """Insert new tenants and update changed ones in one transaction. With `disable_missing`, `configs` are all
        the tenants there are (a tenants folder) and every other tenant is disabled; without it only the given
        tenants are touched (the test suite applies its tenants batch by batch, into one shared database)."""
        changed: list[str] = []
        disabled: list[str] = []
        enabled: list[str] = []
        async with self._db.transaction():
            await self._repository.lock_for_sync()
            rows = await self._repository.list_all()
            stored = {row.id: (row, tenant_config_decoder.decode(row.config)) for row in rows}
            slugs = {row.slug: row.id for row in rows}
            # An issuer names exactly one realm: a second tenant claiming it would take over the first one's logins.
            # A disabled tenant keeps its issuers (and slug) until it is purged.
            synced = {config.id for config in configs}
            issuers = {
                realm.issuer: tenant_id
                for tenant_id, (_, config) in stored.items()
                if tenant_id not in synced
                for realm in config.realms
            }
            # A builtin realm's name is the path of its endpoints (/realms/<name>/...): one tenant's only.
            builtin_names = {
                realm.name: tenant_id
                for tenant_id, (_, config) in stored.items()
                if tenant_id not in synced
                for realm in config.realms
                if realm.builtin
            }
            for config in configs:
                for realm in config.realms:
                    holder = issuers.get(realm.issuer)
                    if holder is not None:
                        raise TenantConflict(f"issuer {realm.issuer!r} already belongs to a realm of tenant {holder}")
                    holder = builtin_names.get(realm.name) if realm.builtin else None
                    if holder is not None:
                        raise TenantConflict(f"builtin realm {realm.name!r} already belongs to tenant {holder}")
                owner = slugs.get(config.slug)
                if owner is not None and owner != config.id:
                    raise TenantConflict(f"slug {config.slug!r} already belongs to tenant {owner}, not {config.id}")
                current = stored.get(config.id)
                if not await self._write(config, current[0] if current else None):
                    continue
                changed.append(config.slug)
                was_disabled = current is not None and current[1].disabled
                if config.disabled and not was_disabled:
                    disabled.append(config.slug)
                    log.warning("tenant disabled", extra={"tenant": config.slug, "reason": "disabled in its file"})
                elif was_disabled and not config.disabled:
                    enabled.append(config.slug)
                    log.warning("tenant enabled again", extra={"tenant": config.slug})
            if disable_missing:
                for tenant_id, (row, config) in stored.items():
                    if tenant_id in synced or config.disabled:
                        continue
                    await self._write(msgspec.structs.replace(config, disabled=True), row)
                    changed.append(config.slug)
                    disabled.append(config.slug)
                    log.warning("tenant disabled", extra={"tenant": config.slug, "reason": "its file is gone"})
            if changed:
                await self._repository.notify_changed()
        return SyncResult(changed=changed, disabled=disabled, enabled=enabled)

    async def _write(self, config: TenantConfig, current: TenantRow | None) -> bool:
        """Store the configuration unless it is stored already; returns whether it wrote."""
        document = tenant_config_encoder.encode(config).decode()
        digest = hashlib.sha256(document.encode()).hexdigest()
        if current is None:
            await self._repository.insert(config, document, digest)
        elif current.config_hash != digest:
            await self._repository.update(config, document, digest)
        else:
            return False
        return True

    async def purge(self, reference: str, purges: Sequence[TenantRowsPurge], *, commit: bool) -> PurgeResult:
        """Delete every row of a disabled tenant, `purges` first (in their order: rows before the rows they
        reference), then its tenant row, in one transaction. Without `commit` the transaction is rolled back: the
        result says what would have been removed. `reference` is the tenant's id or slug."""
        try:
            async with self._db.transaction():
                # Syncs wait for the purge (and the purge for them): a tenant is not enabled while it is emptied.
                await self._repository.lock_for_sync()
                row = await self._find(reference)
                if row is None:
                    raise PurgeRefused(f"no tenant {reference!r} in the database (give its id or slug)")
                if not tenant_config_decoder.decode(row.config).disabled:
                    raise PurgeRefused(
                        f"tenant {row.slug} ({row.id}) is enabled; only a disabled tenant is purged: remove its file "
                        "from the tenants folder (or set `disabled = true` in it) and sync first"
                    )
                # The tenant is disabled, so no request reaches its rows and the pending-close timer skips it: only
                # the Idempotency-Key sweep may delete its expired keys meanwhile, which a purge does anyway.
                removed: dict[str, int] = {}
                for purge in purges:
                    removed.update(await purge(row.id))
                removed["tenant"] = await self._repository.delete(row.id)
                result = PurgeResult(tenant_id=row.id, slug=row.slug, removed=removed, committed=commit)
                if not commit:
                    raise _DryRun(result)
                await self._repository.notify_changed()
        except _DryRun as dry_run:
            return dry_run.result
        log.warning("tenant purged", extra={"tenant": row.slug, "tenant_id": str(row.id), "removed": removed})
        return result

    async def _find(self, reference: str) -> TenantRow | None:
        try:
            tenant_id = uuid.UUID(reference)
        except ValueError:
            return await self._repository.get_by_slug(reference)
        # A slug may look like a UUID: the id wins, then the slug.
        return await self._repository.get(tenant_id) or await self._repository.get_by_slug(reference)
