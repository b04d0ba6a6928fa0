"""Schema changes through Piccolo's migrations (the only way the schema changes, in tests too)."""

from __future__ import annotations

import contextlib
import io
import os

os.environ.setdefault("PICCOLO_CONF", "app.db.piccolo_conf")

import asyncpg
from piccolo.apps.migrations.commands.backwards import run_backwards
from piccolo.apps.migrations.commands.forwards import run_forwards

from app.db.database import Database
from app.db.errors import DatabaseUnavailable
from app.db.piccolo_conf import DB


def configure(dsn: str) -> None:
    """Point Piccolo (it runs the migrations) at the database."""
    DB.config["dsn"] = dsn


async def check_connection(dsn: str) -> None:
    """Fail fast, with the cause, when the database cannot be reached."""
    database = Database(dsn, min_size=1, max_size=1)
    await database.open()
    await database.close()


async def migrate() -> None:
    """Apply every migration in migrations/ that has not run yet (Piccolo records them in its own table)."""
    # Piccolo prints progress with emoji to stdout; keep it out of the service's structured log stream.
    with contextlib.redirect_stdout(io.StringIO()) as output:
        try:
            result = await run_forwards(app_name="all")
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(f"migrations failed: {exc.__class__.__name__}: {exc}") from None
    if not result.success:
        raise DatabaseUnavailable(f"migrations failed: {result.message}\n{output.getvalue()}")


async def rollback_all() -> None:
    """Undo every applied migration, newest first, each with its backwards step (tests and local resets).

    Piccolo's own migration table stays, with no migration recorded in it.
    """
    # Named, not app_name="all": that discards each app's result and always reports success.
    with contextlib.redirect_stdout(io.StringIO()) as output:
        try:
            result = await run_backwards(app_name="ticketing", migration_id="all", auto_agree=True)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(f"rollback failed: {exc.__class__.__name__}: {exc}") from None
    if not result.success:
        raise DatabaseUnavailable(f"rollback failed: {result.message}\n{output.getvalue()}")
