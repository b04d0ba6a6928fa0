"""The persistence boundary against a real PostgreSQL: calls join the current transaction through a context
variable, run on their own connection outside one, come back as typed rows, and raise the boundary's errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from app.db.database import Database, RowShapeMismatch, select_list
from app.db.errors import DatabaseUnavailable, UniqueViolation, UnstorableText


class Item(msgspec.Struct, frozen=True):
    id: int
    label: str
    doubled: int


ITEM_COLUMNS = select_list(Item, doubled="id * 2")


@pytest.fixture
async def db(migrated: str) -> AsyncIterator[Database]:
    database = Database(migrated, min_size=1, max_size=4)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def table(db: Database) -> AsyncIterator[str]:
    name = f"boundary_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, label text NOT NULL)")
    yield name
    await db.execute(f"DROP TABLE {name}")


async def backend_pid(db: Database) -> int:
    pid: int = await db.fetch_value("SELECT pg_backend_pid()")
    return pid


def test_select_list_follows_the_field_order() -> None:
    assert ITEM_COLUMNS == "id, label, id * 2 AS doubled"
    assert select_list(Item, prefix="t.") == "t.id, t.label, t.doubled"


async def test_rows_come_back_as_typed_structs_and_execute_counts_rows(db: Database, table: str) -> None:
    assert await db.execute(f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two')") == 2
    assert await db.fetch_all(Item, f"SELECT {ITEM_COLUMNS} FROM {table} ORDER BY id") == [
        Item(1, "one", 2),
        Item(2, "two", 4),
    ]
    assert await db.fetch_one(Item, f"SELECT {ITEM_COLUMNS} FROM {table} WHERE id = $1", 2) == Item(2, "two", 4)
    assert await db.fetch_one(Item, f"SELECT {ITEM_COLUMNS} FROM {table} WHERE id = $1", 3) is None
    assert await db.fetch_column(f"SELECT label FROM {table} ORDER BY id DESC") == ["two", "one"]
    assert await db.fetch_value(f"SELECT label FROM {table} WHERE id = 3") is None
    assert await db.execute(f"UPDATE {table} SET label = 'none' WHERE id = 3") == 0


async def test_calls_inside_a_transaction_share_its_connection_and_commit_together(db: Database, table: str) -> None:
    async with db.transaction():
        pid = await backend_pid(db)
        await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
        assert await backend_pid(db) == pid
        # Its own uncommitted write is visible inside; another connection does not see it yet.
        assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 1
        assert await _count_elsewhere(db, table) == 0
    assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 1


async def _count_elsewhere(db: Database, table: str) -> int:
    # Another database object has a transaction context of its own: it looks from outside.
    other = Database(db.dsn, min_size=1, max_size=1)
    await other.open()
    try:
        count: int = await other.fetch_value(f"SELECT count(*) FROM {table}")
        return count
    finally:
        await other.close()


async def test_a_failure_inside_rolls_back_every_call_and_keeps_the_connection(db: Database, table: str) -> None:
    async with db.transaction():
        pid = await backend_pid(db)
    with pytest.raises(LookupError):
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
            async with db.transaction():  # a nested block runs in the outer transaction
                assert await backend_pid(db) == pid
                await db.execute(f"INSERT INTO {table} VALUES (2, 'two')")
            raise LookupError("a rule the service enforces")
    assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 0
    # The caller's own failure says nothing about the connection: it is reused, not reopened.
    assert await backend_pid(db) == pid
    assert db.pool.size == 1


async def test_outside_a_transaction_each_call_uses_a_pooled_connection(db: Database, table: str) -> None:
    await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
    # Not in a transaction: the write is committed at once and visible to another database object.
    assert await _count_elsewhere(db, table) == 1
    assert (db.pool.size, db.pool.idle) == (1, 1)


async def test_concurrent_transactions_do_not_share_a_connection(db: Database) -> None:
    started = asyncio.Barrier(2)

    async def pid_in_transaction() -> int:
        async with db.transaction():
            await started.wait()
            return await backend_pid(db)

    first, second = await asyncio.gather(pid_in_transaction(), pid_in_transaction())
    assert first != second


async def test_two_databases_never_join_each_others_transactions(db: Database, migrated: str) -> None:
    other = Database(migrated, min_size=1, max_size=1)
    await other.open()
    try:
        async with db.transaction():
            pid = await backend_pid(db)
            assert await backend_pid(other) != pid
    finally:
        await other.close()


async def test_driver_errors_come_out_as_the_boundarys_own(db: Database, table: str) -> None:
    await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
    with pytest.raises(UniqueViolation) as duplicate:
        await db.execute(f"INSERT INTO {table} VALUES (1, 'again')")
    assert duplicate.value.constraint == f"{table}_pkey"
    with pytest.raises(UnstorableText):
        await db.execute(f"INSERT INTO {table} VALUES (2, $1)", "nul \x00 inside")
    # Anything a caller does not act on passes through unchanged.
    with pytest.raises(asyncpg.UndefinedTableError):
        await db.fetch_value("SELECT * FROM no_such_table")
    # Inside a transaction too, and the transaction is rolled back.
    with pytest.raises(UniqueViolation):
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (3, 'three')")
            await db.execute(f"INSERT INTO {table} VALUES (1, 'again')")
    assert await db.fetch_column(f"SELECT id FROM {table}") == [1]


async def test_a_nested_block_is_a_savepoint(db: Database, table: str) -> None:
    async with db.transaction():
        await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
        with pytest.raises(UniqueViolation):
            async with db.transaction():
                await db.execute(f"INSERT INTO {table} VALUES (2, 'two')")
                await db.execute(f"INSERT INTO {table} VALUES (1, 'again')")
        # The caught failure undid the nested block only; the outer transaction goes on and commits.
        await db.execute(f"INSERT INTO {table} VALUES (3, 'three')")
    assert await db.fetch_column(f"SELECT id FROM {table} ORDER BY id") == [1, 3]


async def test_a_task_started_inside_a_transaction_does_not_join_it(db: Database, table: str) -> None:
    release = asyncio.Event()

    async def outlives_the_block() -> tuple[int, int]:
        inside = (await backend_pid(db), await db.fetch_value(f"SELECT count(*) FROM {table}"))
        await release.wait()
        # The block has ended and its connection is back in the pool: the task never reaches it.
        await db.execute(f"INSERT INTO {table} VALUES (2, 'from the task')")
        return inside

    async with db.transaction():
        await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
        pid = await backend_pid(db)
        task = asyncio.create_task(outlives_the_block())
        await asyncio.sleep(0.05)
    async with db.transaction():
        assert await backend_pid(db) == pid  # the pool hands the same connection to the next transaction
        release.set()
        task_pid, count_seen = await task
        # The task ran on a connection of its own, and did not see the uncommitted row.
        assert task_pid != pid
        assert count_seen == 0
        assert await db.fetch_column(f"SELECT id FROM {table} ORDER BY id") == [1, 2]


async def test_a_statement_whose_columns_are_not_the_row_type_is_refused(db: Database, table: str) -> None:
    await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
    # Two fields of the same type in the wrong order would otherwise swap silently.
    with pytest.raises(RowShapeMismatch, match=r"Item has fields \('id', 'label', 'doubled'\)"):
        await db.fetch_one(Item, f"SELECT id * 2 AS doubled, label, id FROM {table}")
    with pytest.raises(RowShapeMismatch):
        await db.fetch_all(Item, f"SELECT id, label, id * 2 FROM {table}")


async def test_no_free_connection_within_the_acquire_timeout_is_503_but_not_an_outage(
    migrated: str, caplog: pytest.LogCaptureFixture
) -> None:
    busy = Database(migrated, min_size=2, max_size=2, acquire_timeout=0.2)
    await busy.open()
    try:
        async with busy.transaction():
            async with busy.transaction():  # a savepoint: still the one connection
                idle_before = busy.pool.idle
            assert idle_before == 1
            holder = asyncio.Event()

            async def hold_the_other_connection() -> None:
                async with busy.transaction():
                    await busy.fetch_value("SELECT 1")
                    holder.set()
                    await asyncio.sleep(0.6)

            held = asyncio.create_task(hold_the_other_connection())
            await holder.wait()
            with caplog.at_level("WARNING", logger="app.db"):
                for _ in range(2):
                    with pytest.raises(DatabaseUnavailable, match="the database is busy"):
                        await asyncio.create_task(busy.fetch_value("SELECT 1"))  # another task: needs a connection
            await held
        # Overload is not an outage: logged once as what it is, and no connection was thrown away for it.
        assert [record.getMessage() for record in caplog.records] == [
            "every database connection is busy; answering 503 to requests that waited too long"
        ]
        assert busy.pool.size == 2
        assert busy.pool.idle == 2
        assert await busy.fetch_value("SELECT 1") == 1
    finally:
        await busy.close()


async def test_a_blocks_own_os_error_passes_through_and_commits_nothing(
    db: Database, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="app.db")
    with pytest.raises(FileNotFoundError):
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (1, 'a')")
            raise FileNotFoundError("an attachment the block tried to read")
    with pytest.raises(TimeoutError):
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (2, 'b')")
            raise TimeoutError("a call the block made timed out")
    assert await db.fetch_value(f"SELECT count(*) FROM {table}") == 0
    # Neither failure is taken for the database going away.
    assert caplog.records == []


async def test_a_cancelled_statement_is_unavailable_but_not_an_outage(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="app.db")
    with pytest.raises(DatabaseUnavailable, match="the statement was cancelled"):
        async with db.transaction():
            await db.execute("SET LOCAL statement_timeout = 50")
            await db.fetch_value("SELECT pg_sleep(5)")
    assert caplog.records == []
    assert await db.fetch_value("SELECT 1") == 1


async def test_connections_run_without_jit(db: Database) -> None:
    # A list query over a large tenant would otherwise be JIT-compiled on every request (see app/db/pool.py).
    assert await db.fetch_value("SHOW jit") == "off"
