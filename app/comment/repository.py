"""SQL for comments. tenant_id is a mandatory argument of every method.

Adding a comment is one statement: the ticket's row is updated (updated_at and updated_by move, its event sequence is
bumped under the row lock; its etag stays, so a comment never makes another client's field update stale), the comment
is inserted with that sequence number, and the ticket_event row `comment.created` records it. A ticket deleted in the
meantime updates no row, and then nothing is written. The ticket's row lock is held for this statement only (or until
the Idempotency-Key's transaction commits, one statement later).

Times come from the database's now() (stable, which Citus accepts in an UPDATE), never earlier than the ticket's last
change, so comments and events stay in time order with their sequence.
"""

from __future__ import annotations

import datetime
import uuid

import msgspec

from app.db.database import Database, select_list


class CommentRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    content: str
    is_internal: bool
    author: str
    created_at: datetime.datetime


_COLUMNS = select_list(CommentRow)

# $1 tenant, $2 ticket id, $3 comment id, $4 content, $5 is_internal, $6 author, $7 request id, $8 support flag.
CREATE = f"""
WITH touched AS (
    UPDATE ticket t
       SET updated_at = greatest(now(), t.updated_at), updated_by = $6, event_sequence = t.event_sequence + 1
     WHERE t.tenant_id = $1 AND t.id = $2 AND t.deleted_at IS NULL
 RETURNING t.id, t.etag, t.state_id, t.type_version, t.pending_until, t.assignee, t.updated_at, t.event_sequence
), created AS (
    INSERT INTO ticket_comment (tenant_id, id, ticket_id, sequence, content, is_internal, author, created_at)
    SELECT $1, $3, touched.id, touched.event_sequence, $4, $5, $6, touched.updated_at
      FROM touched
 RETURNING {_COLUMNS}
), event AS (
    INSERT INTO ticket_event (tenant_id, ticket_id, sequence, kind, changes, actor, request_id, support, etag,
                              state_id, type_version, pending_until, assignee, created_at, comment_id, internal)
    SELECT $1, touched.id, touched.event_sequence, 'comment.created', '{{}}'::jsonb, $6, $7, $8, touched.etag,
           touched.state_id, touched.type_version, touched.pending_until, touched.assignee, touched.updated_at, $3, $5
      FROM touched
)
SELECT {_COLUMNS} FROM created
"""

# A ticket's comments, oldest first; internal notes only when $3.
_VISIBLE = "tenant_id = $1 AND ticket_id = $2 AND ($3 OR NOT is_internal)"


class CommentRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        tenant_id: uuid.UUID,
        ticket_id: uuid.UUID,
        comment_id: uuid.UUID,
        content: str,
        is_internal: bool,
        author: str,
        request_id: str,
        support: bool,
    ) -> CommentRow | None:
        """The new comment; None when the ticket is gone (deleted since it was read)."""
        return await self._db.fetch_one(
            CommentRow, CREATE, tenant_id, ticket_id, comment_id, content, is_internal, author, request_id, support
        )

    async def get(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, comment_id: uuid.UUID) -> CommentRow | None:
        return await self._db.fetch_one(
            CommentRow,
            f"SELECT {_COLUMNS} FROM ticket_comment WHERE tenant_id = $1 AND id = $2 AND ticket_id = $3",
            tenant_id,
            comment_id,
            ticket_id,
        )

    async def count(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, *, internal: bool) -> int:
        total: int = await self._db.fetch_value(
            f"SELECT count(*) FROM ticket_comment WHERE {_VISIBLE}", tenant_id, ticket_id, internal
        )
        return total

    async def page(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, *, internal: bool, limit: int | None, offset: int = 0
    ) -> list[CommentRow]:
        """At most `limit` (None: all) of the ticket's comments from `offset`, oldest first; internal notes only with
        `internal`."""
        return await self._db.fetch_all(
            CommentRow,
            f"SELECT {_COLUMNS} FROM ticket_comment WHERE {_VISIBLE} ORDER BY sequence LIMIT $4 OFFSET $5",
            tenant_id,
            ticket_id,
            internal,
            limit,
            offset,
        )

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's comments (before its tickets, which they reference); rows removed."""
        return {"ticket_comment": await self._db.execute("DELETE FROM ticket_comment WHERE tenant_id = $1", tenant_id)}
