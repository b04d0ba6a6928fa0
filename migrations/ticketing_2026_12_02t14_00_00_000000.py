"""Attachments: files on a ticket (optionally on one of its comments), their bytes kept in a blob store.

A row describes a stored blob: its safe file name, size, the type read from its content, its SHA-256, where the
blob store keeps it (`storage_key`), who uploaded it and when. A deleted attachment keeps its row (`deleted_at`) for
the ticket's history; its blob is removed once the deletion has committed. `comment_id` names the comment a file
came with, and `internal` whether that comment is an internal note (then only agent-level callers see the file, and
its events are internal like the note's). `ticket_event.attachment_id` says which attachment an `attachment.created`
or `attachment.deleted` event is about.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-02T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "attachments"

STATEMENTS = [
    """
    CREATE TABLE attachment (
        tenant_id   uuid NOT NULL,
        id          uuid NOT NULL,
        ticket_id   uuid NOT NULL,
        comment_id  uuid,
        filename    text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
        size        bigint NOT NULL CHECK (size > 0),
        mime_type   text NOT NULL,
        sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        storage_key text NOT NULL,
        author      text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        -- The number of its attachment.created event in the ticket's history: a ticket's files in the order they came,
        -- also those that came together (in one transaction, so at one time).
        sequence    integer NOT NULL,
        deleted_at  timestamptz,
        internal    boolean NOT NULL DEFAULT false,
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticket (tenant_id, id),
        FOREIGN KEY (tenant_id, comment_id) REFERENCES ticket_comment (tenant_id, id)
    )
    """,
    # A ticket's attachments in order, the sum of their sizes (the per-ticket limit), and, once the ticket is deleted,
    # all of its blobs' keys (deleted rows included, so the index is not partial).
    "CREATE INDEX attachment_ticket_idx ON attachment (tenant_id, ticket_id, sequence)",
    "CREATE INDEX attachment_comment_idx ON attachment (tenant_id, comment_id) WHERE comment_id IS NOT NULL",
    "ALTER TABLE ticket_event ADD COLUMN attachment_id uuid",
]

BACKWARDS = [
    "ALTER TABLE ticket_event DROP COLUMN attachment_id",
    "DROP INDEX attachment_comment_idx",
    "DROP INDEX attachment_ticket_idx",
    "DROP TABLE attachment",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
