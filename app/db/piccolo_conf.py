"""Piccolo's configuration module (PICCOLO_CONF points here). The DSN is set by app.db.engine.configure()."""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine


class DeferredPostgresEngine(PostgresEngine):
    """PostgresEngine without the blocking version check that Piccolo runs at construction (i.e. at import).

    The DSN is only known once the CLI has started or found the database; start-up checks reachability itself.
    """

    async def check_version(self) -> None:
        return None

    async def prep_database(self) -> None:
        return None


# No extensions: gen_random_uuid() is built into PostgreSQL 13+, and a managed database may forbid CREATE EXTENSION.
DB = DeferredPostgresEngine(config={}, extensions=())

APP_REGISTRY = AppRegistry(apps=["app.db.piccolo_app"])
