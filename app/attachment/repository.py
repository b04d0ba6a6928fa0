"""SQL for attachments. tenant_id is a mandatory argument of every method.

Adding or deleting an attachment is an event of its ticket, like any other change: the attachment row (or its
deletion mark), the ticket's next event number and its updated_at/updated_by, and the `attachment.created` or
`attachment.deleted` event are one statement. The ticket's etag does not change: a file never makes another client's
field update stale. A deleted attachment keeps its row, marked `deleted_at`; every read here skips it.
"""

from __future__ import annotations

import datetime
import uuid

import msgspec

from app.db.database import Database, select_list


class AttachmentRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    ticket_id: uuid.UUID
    # The ticket's display ID.
    object_id: str
    comment_id: uuid.UUID | None
    filename: str
    size: int
    mime_type: str
    sha256: str
    storage_key: str
    author: str
    created_at: datetime.datetime
    # Came with an internal note: only agent-level callers see it.
    internal: bool


class TicketUsage(msgspec.Struct, frozen=True):
    files: int
    bytes: int


class NewAttachment(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    ticket_id: uuid.UUID
    comment_id: uuid.UUID | None
    filename: str
    size: int
    mime_type: str
    sha256: str
    storage_key: str
    internal: bool


_COLUMNS = select_list(AttachmentRow, prefix="a.", object_id="t.object_id")
_LIVE = "a.deleted_at IS NULL AND t.deleted_at IS NULL"
_FROM = "FROM attachment a JOIN ticket t ON t.tenant_id = a.tenant_id AND t.id = a.ticket_id"

# The ticket's row lock is taken first (lock_ticket), in the same transaction: the per-ticket total checked before
# this statement cannot change under it.
INSERT = f"""
WITH updated AS (
    UPDATE ticket t
       SET event_sequence = t.event_sequence + 1, updated_at = greatest(now(), t.updated_at), updated_by = $10
     WHERE t.tenant_id = $1 AND t.id = $3
 RETURNING t.id, t.object_id, t.etag, t.state_id, t.type_version, t.pending_until, t.assignee, t.updated_at,
           t.event_sequence
), a AS (
    INSERT INTO attachment (tenant_id, id, ticket_id, comment_id, filename, size, mime_type, sha256, storage_key,
                            author, created_at, sequence, internal)
    SELECT $1, $2, updated.id, $4, $5, $6, $7, $8, $9, $10, updated.updated_at, updated.event_sequence, $13
      FROM updated
 RETURNING *
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, assignee, attachment_id, internal, created_at)
    SELECT $1, updated.id, updated.event_sequence, 'attachment.created', '{{}}'::jsonb, $10, $11, $12, updated.etag,
           updated.state_id, updated.type_version, updated.pending_until, updated.assignee, $2, $13,
           updated.updated_at
      FROM updated
)
SELECT {_COLUMNS} FROM a, updated AS t
"""

DELETE = """
WITH removed AS (
    UPDATE attachment
       SET deleted_at = now()
     WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
 RETURNING ticket_id, storage_key, internal
), updated AS (
    UPDATE ticket t
       SET event_sequence = t.event_sequence + 1, updated_at = greatest(now(), t.updated_at), updated_by = $3
      FROM removed
     WHERE t.tenant_id = $1 AND t.id = removed.ticket_id
 RETURNING t.id, t.etag, t.state_id, t.type_version, t.pending_until, t.assignee, t.updated_at, t.event_sequence
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, assignee, attachment_id, internal, created_at)
    SELECT $1, updated.id, updated.event_sequence, 'attachment.deleted', '{}'::jsonb, $3, $4, $5, updated.etag,
           updated.state_id, updated.type_version, updated.pending_until, updated.assignee, $2, removed.internal,
           updated.updated_at
      FROM updated, removed
)
SELECT storage_key FROM removed
"""


class AttachmentRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, tenant_id: uuid.UUID, attachment_id: uuid.UUID, *, internal: bool) -> AttachmentRow | None:
        """A live attachment (neither it nor its ticket deleted); one of an internal note only when `internal`."""
        return await self._db.fetch_one(
            AttachmentRow,
            f"SELECT {_COLUMNS} {_FROM} WHERE a.tenant_id = $1 AND a.id = $2 AND {_LIVE} AND ($3 OR NOT a.internal)",
            tenant_id,
            attachment_id,
            internal,
        )

    async def list_for_ticket(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, *, internal: bool
    ) -> list[AttachmentRow]:
        """The ticket's live attachments, in the order they came; those of internal notes only when `internal`."""
        return await self._db.fetch_all(
            AttachmentRow,
            f"SELECT {_COLUMNS} {_FROM} WHERE a.tenant_id = $1 AND a.ticket_id = $2 AND {_LIVE} "
            "AND ($3 OR NOT a.internal) ORDER BY a.sequence",
            tenant_id,
            ticket_id,
            internal,
        )

    async def for_comments(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, comment_ids: list[uuid.UUID]
    ) -> list[AttachmentRow]:
        """The live files that came with these comments of the ticket, in the order they came."""
        return await self._db.fetch_all(
            AttachmentRow,
            f"SELECT {_COLUMNS} {_FROM} WHERE a.tenant_id = $1 AND a.ticket_id = $2 AND a.comment_id = ANY($3::uuid[]) "
            f"AND {_LIVE} ORDER BY a.sequence",
            tenant_id,
            ticket_id,
            comment_ids,
        )

    async def lock_ticket(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> bool:
        """Lock the ticket's row until the transaction ends; False when it is gone (deleted)."""
        locked = await self._db.fetch_value(
            "SELECT true FROM ticket WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
            tenant_id,
            ticket_id,
        )
        return locked is not None

    async def usage(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> tuple[int, int]:
        """The number of the ticket's live attachments and the sum of their sizes."""
        row = await self._db.fetch_one(
            TicketUsage,
            "SELECT count(*) AS files, coalesce(sum(size), 0)::bigint AS bytes FROM attachment "
            "WHERE tenant_id = $1 AND ticket_id = $2 AND deleted_at IS NULL",
            tenant_id,
            ticket_id,
        )
        assert row is not None  # an aggregate always has its row
        return row.files, row.bytes

    async def insert(
        self, tenant_id: uuid.UUID, attachment: NewAttachment, actor: str, request_id: str, support: bool
    ) -> AttachmentRow:
        row = await self._db.fetch_one(
            AttachmentRow,
            INSERT,
            tenant_id,
            attachment.id,
            attachment.ticket_id,
            attachment.comment_id,
            attachment.filename,
            attachment.size,
            attachment.mime_type,
            attachment.sha256,
            attachment.storage_key,
            actor,
            request_id,
            support,
            attachment.internal,
        )
        assert row is not None  # the ticket is locked by this transaction (lock_ticket)
        return row

    async def mark_deleted(
        self, tenant_id: uuid.UUID, attachment_id: uuid.UUID, actor: str, request_id: str, support: bool
    ) -> str | None:
        """Mark the attachment deleted, with its ticket's `attachment.deleted` event; its blob's key, or None when
        it was already deleted."""
        key: str | None = await self._db.fetch_value(DELETE, tenant_id, attachment_id, actor, request_id, support)
        return key

    async def mark_ticket_deleted(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> list[str]:
        """Mark every attachment of a (deleted) ticket deleted; the keys of all its blobs, those marked before
        included, so that a retry removes whatever an earlier attempt left."""
        await self._db.execute(
            "UPDATE attachment SET deleted_at = now() WHERE tenant_id = $1 AND ticket_id = $2 AND deleted_at IS NULL",
            tenant_id,
            ticket_id,
        )
        keys: list[str] = await self._db.fetch_column(
            "SELECT storage_key FROM attachment WHERE tenant_id = $1 AND ticket_id = $2", tenant_id, ticket_id
        )
        return keys

    async def with_rows(self, tenant_id: uuid.UUID, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of the ids that have a row, deleted or not."""
        found: list[uuid.UUID] = await self._db.fetch_column(
            "SELECT id FROM attachment WHERE tenant_id = $1 AND id = ANY($2::uuid[])", tenant_id, attachment_ids
        )
        return set(found)

    async def live(self, tenant_id: uuid.UUID, attachment_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of the ids whose attachment is live (neither it nor its ticket deleted)."""
        found: list[uuid.UUID] = await self._db.fetch_column(
            f"SELECT a.id {_FROM} WHERE a.tenant_id = $1 AND a.id = ANY($2::uuid[]) AND {_LIVE}",
            tenant_id,
            attachment_ids,
        )
        return set(found)

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's attachment rows (before its tickets); its blobs go with the next orphan sweep."""
        return {"attachment": await self._db.execute("DELETE FROM attachment WHERE tenant_id = $1", tenant_id)}
