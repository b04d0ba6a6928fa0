"""Database wiring: Piccolo's engine (migrations, ORM) and the asyncpg pools that serve requests."""

from __future__ import annotations

import contextlib
import io
import os

os.environ.setdefault("PICCOLO_CONF", "app.db.piccolo_conf")

import asyncpg
from piccolo.apps.migrations.commands.backwards import run_backwards
from piccolo.apps.migrations.commands.forwards import run_forwards

from app.db.piccolo_conf import DB
from app.db.pool import ConnectionPool


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used; the message names the cause without credentials."""


def configure(dsn: str) -> None:
    """Point Piccolo (migrations and the ORM's occasional queries, e.g. tenant sync) at the database."""
    DB.config["dsn"] = dsn


async def check_connection(dsn: str) -> None:
    """Fail fast, with the cause, when the database cannot be reached."""
    pool = await create_pool(dsn, 1, 1)
    await pool.close()


async def create_pool(dsn: str, min_size: int, max_size: int) -> ConnectionPool:
    """A connection pool owned by its caller (each app instance has its own), for the request path."""
    try:
        return await ConnectionPool.open(dsn, min_size, max_size)
    except (OSError, ValueError, asyncpg.PostgresError, asyncpg.ClientConfigurationError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc.__class__.__name__}: {exc}") from None


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
