"""The persistence boundary: one object owns the connection pool and the current transaction.

A service writes `async with db.transaction():` and every repository call inside it joins that transaction through
a context variable (the way Piccolo's own transactions work); outside one, each call runs on a connection of its
own for that one statement. Repositories therefore never pass connections around, and nothing outside app/db
imports the driver: rows come back as the frozen msgspec Structs a repository names, and driver errors come out as
the exceptions of app.db.errors.

A transaction belongs to the task that opened it. A task started inside one inherits the context variable but does
not join the transaction: its calls run on connections of their own, because one connection serves one task at a
time, and the transaction's connection goes back to the pool when its block ends while the task may live on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import asyncpg
import msgspec

from app.db.errors import DatabaseUnavailable, UniqueViolation, UnstorableText
from app.db.pool import ConnectionPool, PoolExhausted

Row = TypeVar("Row", bound=msgspec.Struct)


# An overloaded pool is logged at most this often.
BUSY_LOG_INTERVAL_SECONDS = 60.0
# Statements whose row shape has been checked; the list query composes its SQL, so the set is bounded.
MAX_CHECKED_SHAPES = 1000

# Raised while connecting: the server is down, refuses us, or the URL is wrong.
_CONNECT_ERRORS = (OSError, ValueError, asyncpg.PostgresError, asyncpg.ClientConfigurationError)
# Raised when the database goes away under a running service: it is down or restarting, an administrator shut it
# down or ended our session, the network dropped, or a new connection could not be opened in time.
_CONNECTION_FAILURES = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
    # Too many connections (right after a restart every worker reconnects at once), out of memory or disk.
    asyncpg.exceptions.InsufficientResourcesError,
    # A failover left us on a standby.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


class RowShapeMismatch(Exception):
    """A statement's columns are not the row type's fields in order: a programming error in a repository."""


class _Transaction:
    """The open transaction of one task: its connection, for as long as the block runs."""

    __slots__ = ("connection", "open", "owner")

    def __init__(self, connection: asyncpg.Connection, owner: asyncio.Task[Any] | None) -> None:
        self.connection = connection
        self.owner = owner
        self.open = True


def select_list(row_type: type[msgspec.Struct], *, prefix: str = "", **expressions: str) -> str:
    """The SELECT list for a row type, in the order of its fields, so `row_type(*record)` fills it positionally.
    A field is read from the column of its name (after `prefix`, a table alias), or from its expression."""
    return ", ".join(
        f"{expressions[name]} AS {name}" if name in expressions else f"{prefix}{name}"
        for name in row_type.__struct_fields__
    )


class Database:
    def __init__(
        self,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        acquire_timeout: float = 5.0,
        logger: str = "app.db",
        settings: dict[str, str] | None = None,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        # Where outages are logged (once each): a second pool in the process (the webhook worker's) names its own.
        self._log = logging.getLogger(logger)
        self._min_size = min_size
        self._max_size = max_size
        self._acquire_timeout = acquire_timeout
        # When the current outage began (monotonic), so that it is logged once, not once per request.
        self._unavailable_since: float | None = None
        self._busy_logged_at = -BUSY_LOG_INTERVAL_SECONDS
        self._pool: ConnectionPool | None = None
        # Per instance: two databases in one process (a test and the app it drives) never share a transaction.
        self._transaction: ContextVar[_Transaction | None] = ContextVar(f"transaction-{id(self)}", default=None)
        self._checked_shapes: set[tuple[type[msgspec.Struct], str]] = set()

    @property
    def dsn(self) -> str:
        return self._dsn

    async def open(self) -> None:
        try:
            self._pool = await ConnectionPool.open(
                self._dsn, self._min_size, self._max_size, self._acquire_timeout, self._settings
            )
        except _CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {exc.__class__.__name__}: {exc}") from None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise DatabaseUnavailable("the database is not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One transaction for every repository call inside the block. A nested block is a savepoint of the outer
        transaction: a failure inside it that the caller catches undoes only the nested block's work."""
        current = self._current()
        if current is not None:
            async with current.connection.transaction():
                yield
            return
        # The block's own failure passes through as it is: an OSError or a timeout of the caller's (a file, a
        # network call) says nothing about the database, and the block's statements already translate theirs.
        failure_of_block: BaseException | None = None
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                current = _Transaction(connection, asyncio.current_task())
                token = self._transaction.set(current)
                try:
                    yield
                except BaseException as exc:
                    failure_of_block = exc
                    raise
                finally:
                    current.open = False
                    self._transaction.reset(token)
        except PoolExhausted as exc:
            raise self._busy(exc) from None
        except _CONNECTION_FAILURES as exc:
            if exc is failure_of_block:
                raise
            # Taking the connection, BEGIN, COMMIT, or the rollback after a statement found the database gone.
            raise self._unavailable(exc) from None

    def _check_shape(self, row_type: type[msgspec.Struct], sql: str, record: asyncpg.Record) -> None:
        """Rows are filled by position, which msgspec does not check: the first time a statement returns a row,
        its column names must be the row type's fields, in order, or two fields of one type could swap silently."""
        if (row_type, sql) in self._checked_shapes:
            return
        columns = tuple(record.keys())
        if columns != row_type.__struct_fields__:
            raise RowShapeMismatch(
                f"{row_type.__name__} has fields {row_type.__struct_fields__}, the statement returns {columns}"
            )
        if len(self._checked_shapes) > MAX_CHECKED_SHAPES:
            self._checked_shapes.clear()
        self._checked_shapes.add((row_type, sql))

    def _current(self) -> _Transaction | None:
        """This task's open transaction, if any (not one a parent task opened, nor one that has ended)."""
        current = self._transaction.get()
        if current is None or not current.open or current.owner is not asyncio.current_task():
            return None
        return current

    async def fetch_all(self, row_type: type[Row], sql: str, *args: Any) -> list[Row]:
        records = await self._run("fetch", sql, args)
        if records:
            self._check_shape(row_type, sql, records[0])
        return [row_type(*record) for record in records]

    async def fetch_one(self, row_type: type[Row], sql: str, *args: Any) -> Row | None:
        record = await self._run("fetchrow", sql, args)
        if record is None:
            return None
        self._check_shape(row_type, sql, record)
        return row_type(*record)

    async def fetch_value(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None when there is no row."""
        return await self._run("fetchval", sql, args)

    async def fetch_column(self, sql: str, *args: Any) -> list[Any]:
        """The first column of every row."""
        return [record[0] for record in await self._run("fetch", sql, args)]

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; returns how many rows it affected (0 for statements that report none)."""
        status: str = await self._run("execute", sql, args)
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def ping(self) -> None:
        """A trivial round trip, for readiness probes."""
        await self.fetch_value("SELECT 1")

    async def _run(self, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        """Call a connection method on the current transaction's connection, or on a pooled one for this call."""
        current = self._current()
        outage_at_start = self._unavailable_since
        try:
            if current is not None:
                result = await getattr(current.connection, method)(sql, *args)
            else:
                async with self.pool.acquire() as connection:
                    result = await getattr(connection, method)(sql, *args)
        except asyncpg.exceptions.QueryCanceledError as exc:
            # A statement timeout or an administrator's cancel: the statement's problem, not the database's absence
            # (no outage is recorded), but the caller can only be told to try again later.
            raise DatabaseUnavailable(f"the statement was cancelled ({exc})") from None
        except PoolExhausted as exc:
            raise self._busy(exc) from None
        except _CONNECTION_FAILURES as exc:
            raise self._unavailable(exc) from None
        except asyncpg.PostgresError as exc:
            raise _translated(exc) from None
        # Only a statement that began during the outage proves the database is back: one already in flight when
        # it went away may still finish.
        if outage_at_start is not None and self._unavailable_since is not None:
            self._recovered()
        return result

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        cause = f"{exc.__class__.__name__}: {exc}"
        if self._unavailable_since is None:
            self._unavailable_since = time.monotonic()
            self._log.warning("database unavailable; answering 503 until it is back", extra={"reason": cause[:300]})
            # Idle connections opened before the outage are most likely dead too, without knowing it yet: the next
            # callers get fresh ones instead of finding out one failed request at a time.
            if self._pool is not None:
                self._pool.discard_idle()
        return DatabaseUnavailable(f"the database is unavailable ({cause[:200]})")

    def _busy(self, exc: PoolExhausted) -> DatabaseUnavailable:
        """Every connection is in use for longer than the acquire timeout: the service is overloaded, the database
        is there. Answered like an outage (503, retry later) but not treated as one: the idle connections (there are
        none) are kept, and the log says what it is, at most once a minute."""
        now = time.monotonic()
        if now - self._busy_logged_at >= BUSY_LOG_INTERVAL_SECONDS:
            self._busy_logged_at = now
            self._log.warning("every database connection is busy; answering 503 to requests that waited too long")
        return DatabaseUnavailable(f"the database is busy ({exc})")

    def _recovered(self) -> None:
        assert self._unavailable_since is not None
        seconds = round(time.monotonic() - self._unavailable_since, 1)
        self._unavailable_since = None
        self._log.warning("database available again", extra={"unavailable_seconds": seconds})


def _translated(exc: asyncpg.PostgresError) -> Exception:
    """The boundary's own exception for the errors callers act on; any other error passes through unchanged."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        constraint: str | None = exc.constraint_name
        return UniqueViolation(constraint)
    if isinstance(exc, asyncpg.UntranslatableCharacterError | asyncpg.CharacterNotInRepertoireError):
        return UnstorableText(str(exc))
    unchanged: Exception = exc
    return unchanged
