"""SQL for Idempotency-Keys. tenant_id is a mandatory argument of every method; a key is stored as the digest of its
scope (see service.scope_digest)."""

from __future__ import annotations

import datetime
import uuid

import msgspec

from app.db.database import Database

# Through the (tenant_id, created_at) index.
DELETE_EXPIRED = "DELETE FROM idempotency_key WHERE tenant_id = $1 AND created_at < $2"


class IdempotencyRow(msgspec.Struct, frozen=True):
    request_hash: str
    # What the first request's write returned, as JSON text.
    response: str


class IdempotencyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, tenant_id: uuid.UUID, scope_digest: bytes, request_hash: str, expired_before: datetime.datetime
    ) -> bool:
        """Whether the key was free, or expired (created before `expired_before`), and is now this request's. A
        concurrent request with the same key makes this wait until that request's transaction ends, and then see
        its row."""
        claimed = await self._db.fetch_value(
            "INSERT INTO idempotency_key AS k (tenant_id, scope_digest, request_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT (tenant_id, scope_digest) DO UPDATE SET request_hash = excluded.request_hash, "
            "response = NULL, created_at = now() WHERE k.created_at < $4 RETURNING true",
            tenant_id,
            scope_digest,
            request_hash,
            expired_before,
        )
        return claimed is not None

    async def stored(self, tenant_id: uuid.UUID, scope_digest: bytes) -> IdempotencyRow | None:
        return await self._db.fetch_one(
            IdempotencyRow,
            "SELECT request_hash, response::text FROM idempotency_key WHERE tenant_id = $1 AND scope_digest = $2",
            tenant_id,
            scope_digest,
        )

    async def store(self, tenant_id: uuid.UUID, scope_digest: bytes, response_json: str) -> None:
        await self._db.execute(
            "UPDATE idempotency_key SET response = $3::jsonb WHERE tenant_id = $1 AND scope_digest = $2",
            tenant_id,
            scope_digest,
            response_json,
        )

    async def all_tenants(self) -> list[uuid.UUID]:
        """Every tenant's id. The sweep asks each tenant in turn rather than asking the keys which tenants have
        expired ones: that question has no index (it would read every key of every tenant), and the one that would
        answer it, correlated with the tenant table, is not one Citus runs."""
        tenants: list[uuid.UUID] = await self._db.fetch_column("SELECT id FROM tenant")
        return tenants

    async def delete_expired(self, tenant_id: uuid.UUID, expired_before: datetime.datetime) -> int:
        return await self._db.execute(DELETE_EXPIRED, tenant_id, expired_before)

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        return {
            "idempotency_key": await self._db.execute("DELETE FROM idempotency_key WHERE tenant_id = $1", tenant_id)
        }
