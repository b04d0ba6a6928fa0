"""The process's single connection pool (Piccolo's, which hands out asyncpg connections) and migrations."""

from __future__ import annotations

import contextlib
import io
import os

os.environ.setdefault("PICCOLO_CONF", "app.db.piccolo_conf")

import asyncpg
from piccolo.apps.migrations.commands.forwards import run_forwards

from app.db.piccolo_conf import DB


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used; the message names the cause without credentials."""


def configure(dsn: str) -> None:
    DB.config["dsn"] = dsn


async def open_pool(min_size: int, max_size: int) -> asyncpg.Pool:
    try:
        await DB.start_connection_pool(min_size=min_size, max_size=max_size)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc.__class__.__name__}: {exc}") from None
    return pool()


def pool() -> asyncpg.Pool:
    if DB.pool is None:
        raise RuntimeError("the connection pool is not open")
    return DB.pool


async def close_pool() -> None:
    await DB.close_connection_pool()


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
