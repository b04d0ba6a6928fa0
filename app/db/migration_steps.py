"""The raw step every migration in migrations/ is made of."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from piccolo.engine import engine_finder


def run_ddl(statements: Sequence[str]) -> Callable[[], Awaitable[None]]:
    """A raw step (for MigrationManager.add_raw / add_raw_backwards) running each statement verbatim, with no
    placeholders (so braces in regexes need no escaping), in the migration's transaction, through the engine Piccolo
    runs migrations with."""

    async def run() -> None:
        engine = engine_finder()
        if engine is None:
            raise RuntimeError("Piccolo found no engine: PICCOLO_CONF must name app.db.piccolo_conf")
        for statement in statements:
            await engine.run_ddl(statement)

    return run
