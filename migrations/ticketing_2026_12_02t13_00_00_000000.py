"""Comments on tickets, and the events that record them.

A comment belongs to one ticket of its tenant and is never changed. `sequence` is the number of the ticket event that
recorded it (`comment.created`), taken under the ticket's row lock: comments are read oldest first in that order,
which holds however close together two comments were written. The unique (tenant_id, ticket_id, sequence) index
serves reading a ticket's comments.

An event gains the comment it records (`comment_id`) and whether customers may not see it (`internal`: an internal
note's event), so a customer's view of the history leaves those events out without reading the comments.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-02T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ticket comments"

STATEMENTS = [
    """
    CREATE TABLE ticket_comment (
        tenant_id   uuid NOT NULL,
        id          uuid NOT NULL,
        ticket_id   uuid NOT NULL,
        sequence    integer NOT NULL,
        content     text NOT NULL,
        is_internal boolean NOT NULL,
        author      text NOT NULL,
        created_at  timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, id),
        CONSTRAINT ticket_comment_sequence_key UNIQUE (tenant_id, ticket_id, sequence),
        FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticket (tenant_id, id)
    )
    """,
    "ALTER TABLE ticket_event ADD COLUMN comment_id uuid, ADD COLUMN internal boolean NOT NULL DEFAULT false",
]

# Undo, in reverse order.
BACKWARDS = [
    "ALTER TABLE ticket_event DROP COLUMN internal, DROP COLUMN comment_id",
    "DROP TABLE ticket_comment",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
