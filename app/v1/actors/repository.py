"""SQL for actor numbers. A subject (a token's `sub`, or `system`) gets the tenant's next number the first time a
v1 answer names it, and keeps it."""

from __future__ import annotations

import uuid

import msgspec

from app.db.database import Database


class ActorNumberRow(msgspec.Struct, frozen=True):
    subject: str
    number: int


_KNOWN = "SELECT subject, number FROM actor_number WHERE tenant_id = $1 AND subject = ANY($2::text[])"
# Under the tenant's lock: numbers are the tenant's highest plus one, in the order the subjects are given.
_NUMBER = (
    "INSERT INTO actor_number (tenant_id, number, subject) "
    "SELECT $1, (SELECT coalesce(max(number), 0) FROM actor_number WHERE tenant_id = $1) + new.position, new.subject "
    "FROM unnest($2::text[]) WITH ORDINALITY AS new (subject, position)"
)


class ActorNumberRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def numbers(self, tenant_id: uuid.UUID, subjects: list[str]) -> dict[str, int]:
        """Each subject's number, numbering those that have none yet."""
        wanted = sorted(set(subjects))
        known = {row.subject: row.number for row in await self._db.fetch_all(ActorNumberRow, _KNOWN, tenant_id, wanted)}
        missing = [subject for subject in subjects if subject not in known]
        if not missing:
            return known
        async with self._db.transaction():
            await self._db.execute(
                "SELECT pg_advisory_xact_lock(hashtext('actor_number:' || $1::uuid::text))", tenant_id
            )
            # Another request may have numbered some of them while this one waited for the lock.
            known = {
                row.subject: row.number for row in await self._db.fetch_all(ActorNumberRow, _KNOWN, tenant_id, wanted)
            }
            unnumbered = list(dict.fromkeys(subject for subject in missing if subject not in known))
            if unnumbered:
                await self._db.execute(_NUMBER, tenant_id, unnumbered)
            rows = await self._db.fetch_all(ActorNumberRow, _KNOWN, tenant_id, wanted)
        return {row.subject: row.number for row in rows}

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        return {"actor_number": await self._db.execute("DELETE FROM actor_number WHERE tenant_id = $1", tenant_id)}
