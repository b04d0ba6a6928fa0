"""The SQL stays runnable on Citus (distributed by tenant_id): checked by parsing, without a database.

The first part tests the checker (tests/citus_sql.py) on synthetic SQL; the second runs it over app/ and
migrations/. A failure there lists every offending statement with its file and line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.citus_sql import (
    CASE_COALESCE,
    KEYS,
    PLACEHOLDER,
    ROW_LOCKS,
    RULES,
    VOLATILE,
    Finding,
    Project,
    Rule,
    Schema,
    Statement,
    check,
    collect_source,
    load_project,
    report,
    statements_of,
)

ROOT = Path(__file__).resolve().parents[2]

SCHEMA_SQL = (
    "CREATE TABLE tenant (id uuid PRIMARY KEY, slug text UNIQUE)",
    "CREATE TABLE ticket_state (tenant_id uuid NOT NULL REFERENCES tenant (id), id uuid NOT NULL, name text, "
    "active boolean, PRIMARY KEY (tenant_id, id))",
    "CREATE TABLE ticket_type (tenant_id uuid NOT NULL, id uuid NOT NULL, prefix text, archived_at timestamptz, "
    "PRIMARY KEY (tenant_id, id))",
    "CREATE TABLE ticket (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(), object_id text, "
    "etag uuid NOT NULL DEFAULT gen_random_uuid(), state_id uuid, pending_until timestamptz, "
    "created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, id))",
    # Not a tenant table (no tenant_id column).
    "CREATE TABLE audit (id bigint PRIMARY KEY, note text)",
    # Becomes a tenant table when the column is added.
    "CREATE TABLE late (id uuid NOT NULL)",
    "ALTER TABLE late ADD COLUMN tenant_id uuid",
)


def _findings(rule: Rule, sql: str) -> list[Finding]:
    """The rule's findings for synthetic SQL; DDL in it counts for the schema too, as in a migration."""
    statements = statements_of(sql)
    schema = Schema.from_statements([s for text in SCHEMA_SQL for s in statements_of(text)] + statements)
    return check(rule, statements, schema)


def _messages(rule: Rule, sql: str) -> list[str]:
    return [finding.message for finding in _findings(rule, sql)]


# --- The schema ---------------------------------------------------------------------------------------------------


def test_tenant_tables_are_those_with_a_tenant_id_column_except_the_reference_table() -> None:
    schema = Schema.from_sql(*SCHEMA_SQL)
    assert schema.tenant_tables == {"ticket_state", "ticket_type", "ticket", "late"}
    assert schema.primary_keys["ticket"] == ("tenant_id", "id")
    assert schema.volatile_defaults["ticket"] == {"id", "etag"}


# --- Keys ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "CREATE TABLE x (tenant_id uuid, id uuid, PRIMARY KEY (id))",
            "primary key (id) of tenant table x does not include tenant_id",
        ),
        (
            "CREATE TABLE x (tenant_id uuid, id uuid PRIMARY KEY)",
            "primary key (id) of tenant table x does not include tenant_id",
        ),
        (
            "CREATE TABLE x (tenant_id uuid, id uuid, prefix text, PRIMARY KEY (tenant_id, id), UNIQUE (prefix))",
            "unique key (prefix) of tenant table x does not include tenant_id",
        ),
        (
            "CREATE TABLE x (tenant_id uuid, id uuid, code text UNIQUE, PRIMARY KEY (tenant_id, id))",
            "unique key (code) of tenant table x does not include tenant_id",
        ),
        (
            "ALTER TABLE ticket ADD COLUMN code text UNIQUE",
            "unique key (code) of tenant table ticket does not include tenant_id",
        ),
        (
            "ALTER TABLE ticket ADD UNIQUE (object_id)",
            "unique key (object_id) of tenant table ticket does not include tenant_id",
        ),
        (
            "CREATE UNIQUE INDEX ticket_state_name_idx ON ticket_state (lower(name))",
            "unique index ticket_state_name_idx (lower(name)) of tenant table ticket_state does not include tenant_id",
        ),
        (
            "CREATE UNIQUE INDEX ticket_object_idx ON ticket (object_id) WHERE state_id IS NOT NULL",
            "unique index ticket_object_idx (object_id) of tenant table ticket does not include tenant_id",
        ),
        (
            "ALTER TABLE ticket ADD FOREIGN KEY (state_id) REFERENCES ticket_state (id)",
            "foreign key (state_id) -> ticket_state (id) of tenant table ticket does not lead with tenant_id on both "
            "sides",
        ),
        (
            "ALTER TABLE ticket ADD FOREIGN KEY (state_id, tenant_id) REFERENCES ticket_state (id, tenant_id)",
            "foreign key (state_id, tenant_id) -> ticket_state (id, tenant_id) of tenant table ticket does not lead "
            "with tenant_id on both sides",
        ),
        (
            # The referenced columns default to the primary key the migrations gave ticket_state.
            "CREATE TABLE x (tenant_id uuid, id uuid, state_id uuid REFERENCES ticket_state, "
            "PRIMARY KEY (tenant_id, id))",
            "foreign key (state_id) -> ticket_state (tenant_id, id) of tenant table x does not lead with tenant_id on "
            "both sides",
        ),
        (
            "ALTER TABLE ticket ADD FOREIGN KEY (tenant_id, state_id) REFERENCES audit (id, id)",
            "foreign key (tenant_id, state_id) -> audit (id, id) of tenant table ticket references a table that is "
            "neither a tenant table nor a reference table",
        ),
        (
            "ALTER TABLE ticket ADD EXCLUDE USING gist (object_id WITH =, pending_until WITH &&)",
            "exclusion constraint of tenant table ticket has no `tenant_id WITH =`",
        ),
        (
            # A table that gets its tenant_id column later is a tenant table all the same.
            "CREATE UNIQUE INDEX late_idx ON late (id)",
            "unique index late_idx (id) of tenant table late does not include tenant_id",
        ),
    ],
)
def test_keys_without_tenant_id_are_flagged(sql: str, message: str) -> None:
    assert _messages(KEYS, sql) == [message]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE x (tenant_id uuid REFERENCES tenant (id), id uuid, prefix text, PRIMARY KEY (tenant_id, id), "
        "UNIQUE (tenant_id, prefix))",
        "CREATE TABLE x (tenant_id uuid, id uuid, state_id uuid, PRIMARY KEY (tenant_id, id), "
        "FOREIGN KEY (tenant_id, state_id) REFERENCES ticket_state)",
        "CREATE UNIQUE INDEX ticket_state_name_idx ON ticket_state (tenant_id, lower(name))",
        "CREATE UNIQUE INDEX ticket_state_default_idx ON ticket_state (tenant_id) WHERE active",
        "CREATE INDEX ticket_pending_until_idx ON ticket (pending_until) WHERE pending_until IS NOT NULL",
        "ALTER TABLE ticket ADD FOREIGN KEY (tenant_id, state_id) REFERENCES ticket_state (tenant_id, id)",
        "ALTER TABLE ticket ADD COLUMN type_id uuid, ADD UNIQUE (tenant_id, type_id, object_id)",
        "ALTER TABLE ticket ADD EXCLUDE USING gist (tenant_id WITH =, pending_until WITH &&)",
        # Reference and other non-tenant tables are not distributed by tenant.
        "CREATE UNIQUE INDEX tenant_slug_idx ON tenant (slug)",
        "CREATE TABLE other (id bigint PRIMARY KEY, code text UNIQUE)",
    ],
)
def test_keys_with_tenant_id_pass(sql: str) -> None:
    assert _messages(KEYS, sql) == []


# --- Volatile functions in UPDATE and DELETE ----------------------------------------------------------------------


def _volatile(function: str, table: str = "tenant table ticket") -> str:
    return (
        f"volatile {function}() in a statement that updates or deletes rows of {table}: "
        "pass the value from the application"
    )


@pytest.mark.parametrize(
    ("sql", "messages"),
    [
        (
            "UPDATE ticket SET etag = gen_random_uuid() WHERE tenant_id = $1 AND id = $2",
            [_volatile("gen_random_uuid")],
        ),
        (
            "UPDATE ticket t SET pending_until = NULL, created_at = clock_timestamp() "
            "WHERE t.tenant_id = $1 AND t.id = $2",
            [_volatile("clock_timestamp")],
        ),
        (
            "DELETE FROM ticket WHERE tenant_id = $1 AND random() < 0.5",
            [_volatile("random")],
        ),
        (
            "UPDATE ticket SET object_id = 'T-' || nextval('ticket_seq') WHERE tenant_id = $1 AND id = $2",
            [_volatile("nextval")],
        ),
        (
            "UPDATE ticket SET state_id = (SELECT id FROM ticket_state WHERE tenant_id = $1 ORDER BY random() "
            "LIMIT 1) WHERE tenant_id = $1",
            [_volatile("random")],
        ),
        (
            # Anywhere in a statement that updates: here the UPDATE is a CTE and the call is in the INSERT.
            "WITH moved AS (UPDATE ticket SET etag = $3 WHERE tenant_id = $1 AND id = $2 RETURNING tenant_id, id) "
            "INSERT INTO audit (id, note) SELECT 1, uuid_generate_v4()::text FROM moved",
            [_volatile("uuid_generate_v4")],
        ),
        (
            "INSERT INTO ticket (tenant_id, id, etag) VALUES ($1, $2, $3) "
            "ON CONFLICT (tenant_id, id) DO UPDATE SET etag = gen_random_uuid()",
            [_volatile("gen_random_uuid")],
        ),
        (
            "UPDATE ticket SET etag = DEFAULT WHERE tenant_id = $1 AND id = $2",
            ["etag = DEFAULT evaluates a volatile default of tenant table ticket: pass the value from the application"],
        ),
        (
            "UPDATE tenant SET slug = txid_current()::text WHERE id = $1",
            [_volatile("txid_current", "reference table tenant")],
        ),
        (
            "UPDATE ticket SET etag = gen_random_uuid(), created_at = clock_timestamp() WHERE tenant_id = $1",
            [_volatile("clock_timestamp"), _volatile("gen_random_uuid")],
        ),
    ],
)
def test_volatile_functions_in_updates_and_deletes_are_flagged(sql: str, messages: list[str]) -> None:
    assert sorted(_messages(VOLATILE, sql)) == sorted(messages)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ticket SET etag = $3 WHERE tenant_id = $1 AND id = $2",
        "UPDATE ticket SET etag = $3, pending_until = now(), created_at = current_timestamp "
        "WHERE tenant_id = $1 AND id = $2",
        "DELETE FROM ticket WHERE tenant_id = $1 AND pending_until < now()",
        "INSERT INTO ticket (tenant_id, id, etag) VALUES ($1, gen_random_uuid(), gen_random_uuid())",
        "INSERT INTO ticket (tenant_id, id, etag) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, id) DO NOTHING",
        "UPDATE audit SET note = gen_random_uuid()::text WHERE id = 1",
        "SELECT gen_random_uuid(), clock_timestamp() FROM ticket WHERE tenant_id = $1",
        "UPDATE ticket SET state_id = NULL WHERE tenant_id = $1 AND created_at = DEFAULT",
    ],
)
def test_stable_functions_and_inserts_pass(sql: str) -> None:
    assert _messages(VOLATILE, sql) == []


# --- Row locks ----------------------------------------------------------------------------------------------------


def _lock(table: str, reference: str, lock: str = "FOR UPDATE") -> str:
    return (
        f"{lock} locks rows of tenant table {table} with no `{reference}.tenant_id = $n` condition: the lock spans "
        "tenants (every shard)"
    )


@pytest.mark.parametrize(
    ("sql", "messages"),
    [
        ("SELECT id FROM ticket WHERE object_id = $2 FOR UPDATE", [_lock("ticket", "ticket")]),
        (
            "SELECT t.tenant_id, t.id FROM ticket t JOIN ticket_state s ON s.tenant_id = t.tenant_id "
            "AND s.id = t.state_id WHERE t.pending_until <= now() ORDER BY t.pending_until LIMIT $1 "
            "FOR UPDATE OF t SKIP LOCKED",
            [_lock("ticket", "t")],
        ),
        (
            # Without OF, the lock takes the joined table's rows too.
            "SELECT t.id FROM ticket t JOIN ticket_state s ON s.tenant_id = t.tenant_id AND s.id = t.state_id "
            "WHERE t.tenant_id = $1 FOR UPDATE",
            [_lock("ticket_state", "s")],
        ),
        ("SELECT id FROM ticket WHERE tenant_id = $1 OR id = $2 FOR SHARE", [_lock("ticket", "ticket", "FOR SHARE")]),
        (
            "SELECT id FROM ticket WHERE tenant_id = ANY($1) FOR NO KEY UPDATE",
            [_lock("ticket", "ticket", "FOR NO KEY UPDATE")],
        ),
        (
            "WITH due AS (SELECT tenant_id, id FROM ticket WHERE pending_until <= now() FOR UPDATE SKIP LOCKED) "
            "UPDATE ticket t SET state_id = NULL FROM due WHERE t.tenant_id = due.tenant_id AND t.id = due.id",
            [_lock("ticket", "ticket")],
        ),
        (
            "UPDATE ticket SET etag = $3 WHERE tenant_id = $1 AND id IN (SELECT id FROM ticket WHERE etag = $2 "
            "FOR UPDATE)",
            [_lock("ticket", "ticket")],
        ),
    ],
)
def test_row_locks_across_tenants_are_flagged(sql: str, messages: list[str]) -> None:
    assert _messages(ROW_LOCKS, sql) == messages


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id FROM ticket WHERE tenant_id = $1 AND object_id = $2 FOR UPDATE",
        "SELECT t.id FROM ticket t JOIN ticket_state s ON s.tenant_id = t.tenant_id AND s.id = t.state_id "
        "WHERE t.tenant_id = $1::uuid AND t.pending_until <= now() FOR UPDATE OF t SKIP LOCKED",
        "SELECT t.id FROM ticket t JOIN ticket_state s ON s.tenant_id = $1 AND s.id = t.state_id "
        "WHERE $1 = t.tenant_id FOR UPDATE",
        "WITH previous AS (SELECT id FROM ticket WHERE tenant_id = $1 AND etag = $2 FOR UPDATE) "
        "UPDATE ticket t SET etag = $3 FROM previous WHERE t.tenant_id = $1 AND t.id = previous.id",
        "SELECT id FROM audit WHERE note IS NULL FOR UPDATE",
        "SELECT id FROM ticket WHERE object_id = $2",
    ],
)
def test_row_locks_in_one_tenant_pass(sql: str) -> None:
    assert _messages(ROW_LOCKS, sql) == []


# --- Non-immutable functions in CASE and COALESCE ----------------------------------------------------------------


def _mutable(name: str, construct: str) -> str:
    return (
        f"{name} inside {construct}: Citus refuses non-immutable functions in CASE and COALESCE "
        "(least()/greatest() are fine, or pass the value)"
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("coalesce(archived_at, now())", _mutable("now()", "COALESCE")),
        ("coalesce(archived_at, current_timestamp)", _mutable("current_timestamp", "COALESCE")),
        ("coalesce(archived_at, localtimestamp)", _mutable("localtimestamp", "COALESCE")),
        ("coalesce(archived_at::date, current_date)", _mutable("current_date", "COALESCE")),
        ("coalesce(archived_at, statement_timestamp())", _mutable("statement_timestamp()", "COALESCE")),
        ("coalesce(id, gen_random_uuid())", _mutable("gen_random_uuid()", "COALESCE")),
        ("CASE WHEN archived_at IS NULL THEN clock_timestamp() END", _mutable("clock_timestamp()", "CASE")),
        ("CASE WHEN random() < 0.5 THEN 1 ELSE 2 END", _mutable("random()", "CASE")),
        ("CASE archived_at WHEN transaction_timestamp() THEN 1 END", _mutable("transaction_timestamp()", "CASE")),
        ("coalesce((SELECT max(now()) FROM ticket WHERE tenant_id = $1), $2)", _mutable("now()", "COALESCE")),
    ],
)
def test_non_immutable_functions_in_case_and_coalesce_are_flagged(expression: str, message: str) -> None:
    sql = f"UPDATE ticket_type SET archived_at = {expression} WHERE tenant_id = $1 AND id = $2"
    assert _messages(CASE_COALESCE, sql) == [message]


def test_a_nested_call_is_reported_once() -> None:
    sql = "SELECT coalesce(archived_at, CASE WHEN $1 THEN now() END) FROM ticket_type WHERE tenant_id = $2"
    assert _messages(CASE_COALESCE, sql) == [_mutable("now()", "COALESCE")]


@pytest.mark.parametrize(
    "expression",
    [
        "least(archived_at, now())",
        "greatest(archived_at, current_timestamp)",
        "coalesce(archived_at, $3)",
        "coalesce(archived_at, '2026-01-01T00:00:00Z'::timestamptz)",
        "CASE WHEN archived_at IS NULL THEN $3::timestamptz ELSE archived_at END",
        "now()",
    ],
)
def test_immutable_case_and_coalesce_pass(expression: str) -> None:
    sql = f"UPDATE ticket_type SET archived_at = {expression} WHERE tenant_id = $1 AND id = $2"
    assert _messages(CASE_COALESCE, sql) == []


# --- Collecting SQL from Python source ---------------------------------------------------------------------------


def _collect(source: str) -> tuple[list[Statement], list[Finding]]:
    collection = collect_source(textwrap.dedent(source), "m.py")
    return collection.statements, collection.problems


def test_string_literals_are_collected_and_prose_and_docstrings_ignored() -> None:
    statements, problems = _collect(
        '''
        """UPDATE notes: a docstring is not SQL."""
        LABEL = "update the ticket"
        SUMMARY = "Select a ticket type"
        QUERY = (
            "SELECT id FROM ticket "
            "WHERE tenant_id = $1"
        )
        LOWER = "select 1"
        '''
    )
    assert problems == []
    assert [(s.text, s.line) for s in statements] == [
        ("SELECT id FROM ticket WHERE tenant_id = $1", 6),
        ("select 1", 9),
    ]


def test_formatted_values_are_resolved_where_simple() -> None:
    statements, problems = _collect(
        """
        _COLUMNS = "id, etag"
        _ORDERS = {"asc": "ASC", "desc": "DESC"}


        async def page(conn, tenant_id, type_id, order, limit):
            conditions = ["tenant_id = $1"]
            arguments = [tenant_id]
            if type_id is not None:
                arguments.append(type_id)
                conditions.append(f"type_id = ${len(arguments)}")
            where = " AND ".join(conditions)
            direction = _ORDERS[order]
            sql = f"SELECT {_COLUMNS} FROM ticket WHERE {where} ORDER BY id {direction} LIMIT {int(limit)}"
            return await conn.fetch(sql, *arguments)


        async def reset(conn, tenant_id, column):
            for table in ("ticket_event", "ticket"):
                await conn.execute(f"UPDATE {table} SET {column} = NULL WHERE tenant_id = $1", tenant_id)
            await conn.execute("DELETE FROM ticket " + "WHERE tenant_id = $1", tenant_id)
        """
    )
    assert problems == []
    assert sorted(s.text for s in statements) == [
        "DELETE FROM ticket WHERE tenant_id = $1",
        f"SELECT id, etag FROM ticket WHERE tenant_id = $1 AND type_id = $1 ORDER BY id ASC LIMIT {PLACEHOLDER}",
        f"SELECT id, etag FROM ticket WHERE tenant_id = $1 AND type_id = $1 ORDER BY id DESC LIMIT {PLACEHOLDER}",
        f"UPDATE ticket SET {PLACEHOLDER} = NULL WHERE tenant_id = $1",
        f"UPDATE ticket_event SET {PLACEHOLDER} = NULL WHERE tenant_id = $1",
    ]


def test_sql_that_does_not_parse_is_a_problem_with_its_place() -> None:
    statements, problems = _collect(
        """
        GOOD = "SELECT 1"
        BROKEN = "SELECT id FROM ticket WHERE"


        def f(x):
            return f"UPDATE ticket SET etag = $1 WHERE {x} AND AND"
        """
    )
    assert [s.text for s in statements] == ["SELECT 1"]
    assert [(p.path, p.line) for p in problems] == [("m.py", 3), ("m.py", 7)]
    assert problems[0].message.startswith("SQL that does not parse: syntax error at end of input")
    assert problems[1].message.startswith("SQL that does not parse (with placeholders for x): syntax error")
    assert problems[1].excerpt == "UPDATE ticket SET etag = $1 WHERE {…} AND AND"


def test_a_table_name_the_collector_cannot_resolve_is_a_problem() -> None:
    statements, problems = _collect(
        """
        def f(conn, table):
            return conn.execute(f"UPDATE {table} SET etag = gen_random_uuid() WHERE tenant_id = $1")
        """
    )
    assert statements == []
    assert [(p.line, p.message) for p in problems] == [
        (3, "a table name comes from table, which the checker cannot resolve")
    ]


def test_findings_point_at_the_line_inside_a_multiline_string() -> None:
    statements, _ = _collect(
        '''
        UPDATE_ETAG = """
        UPDATE ticket
           SET etag = gen_random_uuid()
         WHERE tenant_id = $1
        """
        '''
    )
    schema = Schema.from_sql(*SCHEMA_SQL)
    assert [(f.line, f.excerpt) for f in check(VOLATILE, statements, schema)] == [(4, "SET etag = gen_random_uuid()")]


# --- The project's SQL ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(ROOT)


def test_the_collector_sees_the_projects_sql(project: Project) -> None:
    # A guard against the checks below passing because nothing was collected.
    assert {"ticket", "ticket_event", "ticket_state", "ticket_type"} <= project.schema.tenant_tables
    assert "tenant" not in project.schema.tenant_tables
    migrations = {s.path for s in project.migrations.statements}
    assert migrations == {p.relative_to(ROOT).as_posix() for p in (ROOT / "migrations").glob("ticketing_*.py")}
    repositories = {s.path for s in project.app.statements if s.path.endswith("/repository.py")}
    assert repositories >= {
        "app/ticket/repository.py",
        "app/ticket_type/repository.py",
        "app/ticket_state/repository.py",
    }


def test_all_sql_can_be_analysed(project: Project) -> None:
    if project.problems:
        pytest.fail(report("all SQL in app/ and migrations/ parses and names its tables", project.problems), False)


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_the_projects_sql_follows_the_citus_rule(project: Project, rule: Rule) -> None:
    findings = check(rule, project.statements, project.schema)
    if findings:
        pytest.fail(report(rule.title, findings), pytrace=False)
