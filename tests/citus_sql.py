"""Citus compatibility of the project's SQL, checked without a database (see tests/unit/test_citus_sql.py).

Citus distributes every table with a tenant_id column on tenant_id; `tenant` is a reference table. This module
collects the SQL that the Python source holds in string literals and f-strings, parses it with PostgreSQL's own
parser (pglast), derives the tenant tables from the migrations, and applies the rules of RULES to each statement.

Collecting: a string (a literal, an f-string, a `+` of strings) whose first word is an upper-case SELECT, INSERT,
UPDATE, DELETE, WITH, CREATE, ALTER or DROP is SQL and must parse; one whose first word is such a keyword in lower
case counts as SQL when it parses; anything else is ignored, and so are docstrings. A value formatted into an
f-string is resolved where it is simple: a module constant, a local variable, a loop over a literal tuple (each
value is checked), a dict literal looked up by key (each value), `sep.join(names)` of a list literal and the
elements `.append`ed to it (all of them at once). Any other value becomes a placeholder (an identifier, a number,
nothing, or a column list: the first that parses), and a statement whose table name would be a placeholder is
reported as not analysable.

Limits: only Python string expressions are read (not Piccolo's query builder, not `%` or `.format()`
composition, not values imported from another module, which become placeholders); what a placeholder stands for
is not checked; at most 16 alternatives of a string are checked; a finding's line is exact inside a triple-quoted
string and otherwise the line where the string starts. The function lists below are names, not PostgreSQL's
catalogue: a function they do not name (a user-defined one, or a STABLE one such as jsonb_build_object, which
Citus's CASE/COALESCE check also refuses) is not flagged.
"""

from __future__ import annotations

import ast as py
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pglast import ast, parse_sql
from pglast.enums import (
    A_Expr_Kind,
    AlterTableType,
    BoolExprType,
    ConstrType,
    LockClauseStrength,
    ObjectType,
    OnConflictAction,
)
from pglast.parser import ParseError
from pglast.stream import RawStream

TENANT_COLUMN = "tenant_id"
REFERENCE_TABLES = frozenset({"tenant"})

# Functions PostgreSQL marks VOLATILE that SQL here might plausibly call. Citus refuses them in an UPDATE or
# DELETE of a distributed table (and in a CTE of a modifying statement): the shards would each get another value.
VOLATILE_FUNCTIONS = frozenset(
    {
        "clock_timestamp",
        "currval",
        "gen_random_bytes",
        "gen_random_uuid",
        "lastval",
        "nextval",
        "pg_current_xact_id",
        "pg_current_xact_id_if_assigned",
        "random",
        "random_normal",
        "setseed",
        "setval",
        "timeofday",
        "txid_current",
        "txid_current_if_assigned",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
    }
)
# Not immutable: Citus refuses these inside CASE and COALESCE. current_timestamp, current_date, localtimestamp and
# the other SQL value functions (all STABLE) are caught by their node type.
NON_IMMUTABLE_FUNCTIONS = VOLATILE_FUNCTIONS | {"now", "statement_timestamp", "transaction_timestamp"}

SQL_KEYWORDS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "CREATE", "ALTER", "DROP"})
PLACEHOLDER = "__unresolved__"
_PLACEHOLDER_CANDIDATES = (PLACEHOLDER, "1", "", f"{PLACEHOLDER}, {PLACEHOLDER}")
_MAX_ALTERNATIVES = 16
_MAX_ATTEMPTS = 4096
_MAX_DEPTH = 12


# --- Findings and statements ------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    message: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}\n      | {self.excerpt}"


@dataclass(frozen=True)
class Statement:
    """One parsed SQL statement and where its Python string is."""

    path: str
    line: int  # the line where the Python string starts
    text: str  # the SQL text of the whole string (after substitutions)
    node: ast.Node
    start: int  # where the statement starts in text
    # Part of a migration's backwards step (its BACKWARDS list): undoes the schema instead of building it.
    backwards: bool = False

    def finding(self, message: str, location: int | None = None) -> Finding:
        where = self.start if location is None or location < 0 else location
        return Finding(self.path, self.line + self.text.count("\n", 0, where), message, _excerpt(self.text, where))


def _excerpt(text: str, location: int, width: int = 110) -> str:
    line_start = text.rfind("\n", 0, location) + 1
    line_end = text.find("\n", location)
    line = text[line_start : len(text) if line_end < 0 else line_end]
    column = location - line_start
    if len(line) > width:
        begin = max(0, column - width // 3)
        snippet = line[begin : begin + width]
        line = ("…" if begin else "") + snippet + ("…" if begin + width < len(line) else "")
    return " ".join(line.split())


def statements_of(sql: str, path: str = "<sql>", line: int = 1) -> list[Statement]:
    """Parse SQL text (raises ParseError) into statements."""
    found = []
    for raw in parse_sql(sql):
        begin = raw.stmt_location or 0
        start = begin + len(sql[begin:]) - len(sql[begin:].lstrip())
        if raw.stmt is not None:
            found.append(Statement(path, line, sql, raw.stmt, start))
    return found


# --- Collecting SQL from Python source ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hole:
    """A value formatted into an f-string that the collector cannot resolve."""

    source: str


Template = tuple[str | Hole, ...]


@dataclass
class _Binding:
    values: list[py.expr] = field(default_factory=list)  # assigned values: alternatives
    added: list[py.expr] = field(default_factory=list)  # .append()ed/.extend()ed elements or `+=` parts
    unknown: bool = False  # a parameter, an import or an unpacking target


def _bindings(body: Iterable[py.AST], parameters: Iterable[str] = ()) -> dict[str, _Binding]:
    bindings: dict[str, _Binding] = {name: _Binding(unknown=True) for name in parameters}

    def bind(name: str) -> _Binding:
        return bindings.setdefault(name, _Binding())

    def visit(node: py.AST) -> None:
        if isinstance(node, py.FunctionDef | py.AsyncFunctionDef | py.ClassDef | py.Lambda):
            return
        if isinstance(node, py.Assign):
            for target in node.targets:
                if isinstance(target, py.Name):
                    bind(target.id).values.append(node.value)
                else:
                    for name in py.walk(target):
                        if isinstance(name, py.Name):
                            bind(name.id).unknown = True
        elif isinstance(node, py.AnnAssign) and isinstance(node.target, py.Name) and node.value is not None:
            bind(node.target.id).values.append(node.value)
        elif isinstance(node, py.AugAssign) and isinstance(node.target, py.Name) and isinstance(node.op, py.Add):
            if isinstance(node.value, py.List | py.Tuple):
                bind(node.target.id).added.extend(node.value.elts)
            else:
                bind(node.target.id).added.append(node.value)
        elif isinstance(node, py.For | py.AsyncFor) and isinstance(node.target, py.Name):
            if isinstance(node.iter, py.List | py.Tuple | py.Set):
                bind(node.target.id).values.extend(node.iter.elts)
            else:
                bind(node.target.id).unknown = True
        elif isinstance(node, py.Import | py.ImportFrom):
            for alias in node.names:
                bind((alias.asname or alias.name).split(".")[0]).unknown = True
        elif (
            isinstance(node, py.Call)
            and isinstance(node.func, py.Attribute)
            and isinstance(node.func.value, py.Name)
            and node.func.attr in ("append", "extend")
            and len(node.args) == 1
        ):
            argument = node.args[0]
            if node.func.attr == "append":
                bind(node.func.value.id).added.append(argument)
            elif isinstance(argument, py.List | py.Tuple):
                bind(node.func.value.id).added.extend(argument.elts)
        for child in py.iter_child_nodes(node):
            visit(child)

    for statement in body:
        visit(statement)
    return bindings


def _product(parts: Sequence[list[Template]]) -> list[Template]:
    combined = itertools.product(*parts)
    return [tuple(itertools.chain.from_iterable(choice)) for choice in itertools.islice(combined, _MAX_ALTERNATIVES)]


class _Module:
    """Resolves the string expressions of one Python module into SQL templates."""

    def __init__(self, tree: py.Module) -> None:
        self.parents: dict[py.AST, py.AST] = {}
        for parent in py.walk(tree):
            for child in py.iter_child_nodes(parent):
                self.parents[child] = parent
        self.scopes: dict[py.AST, dict[str, _Binding]] = {tree: _bindings(tree.body)}

    def _scope(self, node: py.AST) -> dict[str, _Binding]:
        if node not in self.scopes:
            assert isinstance(node, py.FunctionDef | py.AsyncFunctionDef | py.Lambda)
            arguments = node.args
            names = [a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]]
            names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
            body = node.body if isinstance(node.body, list) else [node.body]
            self.scopes[node] = _bindings(body, names)
        return self.scopes[node]

    def _lookup(self, name: str, at: py.AST) -> _Binding | None:
        node: py.AST | None = at
        while node is not None:
            if isinstance(node, py.FunctionDef | py.AsyncFunctionDef | py.Lambda | py.Module):
                binding = self._scope(node).get(name)
                if binding is not None:
                    return binding
            node = self.parents.get(node)
        return None

    def templates(self, node: py.expr, depth: int = 0) -> list[Template]:
        """The texts an expression may have, as alternatives; unresolvable parts are holes."""
        hole: list[Template] = [(Hole(py.unparse(node)),)]
        if depth > _MAX_DEPTH:
            return hole
        if isinstance(node, py.Constant) and isinstance(node.value, str | int) and not isinstance(node.value, bool):
            return [(str(node.value),)]
        if isinstance(node, py.JoinedStr):
            return _product([self.templates(value, depth + 1) for value in node.values])
        if isinstance(node, py.FormattedValue):
            if node.conversion != -1 or node.format_spec is not None:
                return hole
            return self.templates(node.value, depth + 1)
        if isinstance(node, py.BinOp) and isinstance(node.op, py.Add):
            return _product([self.templates(node.left, depth + 1), self.templates(node.right, depth + 1)])
        if isinstance(node, py.IfExp):
            return (self.templates(node.body, depth + 1) + self.templates(node.orelse, depth + 1))[:_MAX_ALTERNATIVES]
        if isinstance(node, py.Name):
            binding = self._lookup(node.id, node)
            if binding is None or binding.unknown or not binding.values:
                return hole
            alternatives: list[Template] = []
            for value in binding.values:
                if isinstance(value, py.List | py.Tuple | py.Dict | py.Set):
                    return hole  # not a string
                alternatives += self.templates(value, depth + 1)
            added = [self.templates(part, depth + 1) for part in binding.added]
            return _product([alternatives[:_MAX_ALTERNATIVES], *added])
        if isinstance(node, py.Subscript) and isinstance(node.value, py.Name):
            # A lookup in a dict literal: any of its values.
            binding = self._lookup(node.value.id, node)
            if binding is None or binding.unknown or len(binding.values) != 1:
                return hole
            mapping = binding.values[0]
            if not isinstance(mapping, py.Dict):
                return hole
            alternatives = []
            for value in mapping.values:
                alternatives += self.templates(value, depth + 1)
            return list(dict.fromkeys(alternatives))[:_MAX_ALTERNATIVES] or hole
        if (
            isinstance(node, py.Call)
            and isinstance(node.func, py.Attribute)
            and node.func.attr == "join"
            and len(node.args) == 1
            and not node.keywords
        ):
            elements = self._elements(node.args[0])
            if elements is None:
                return hole
            separator = self.templates(node.func.value, depth + 1)
            parts: list[list[Template]] = []
            for index, element in enumerate(elements):
                if index:
                    parts.append(separator[:1])
                parts.append(self.templates(element, depth + 1)[:1])
            return _product(parts) if parts else [("",)]
        return hole

    def _elements(self, node: py.expr) -> list[py.expr] | None:
        """The elements of a list that is a literal, or a local name bound to one and extended."""
        if isinstance(node, py.List | py.Tuple):
            return list(node.elts)
        if isinstance(node, py.Name):
            binding = self._lookup(node.id, node)
            if binding is None or binding.unknown or len(binding.values) != 1:
                return None
            initial = binding.values[0]
            if not isinstance(initial, py.List | py.Tuple):
                return None
            return [*initial.elts, *binding.added]
        return None

    def string_roots(self, tree: py.Module) -> Iterator[py.expr]:
        """Every outermost string expression that is not a docstring."""
        for node in py.walk(tree):
            if not _is_string_expression(node):
                continue
            parent = self.parents.get(node)
            if parent is not None and (_is_string_expression(parent) or isinstance(parent, py.FormattedValue)):
                continue
            if isinstance(parent, py.Expr):
                continue  # a docstring or a bare string
            assert isinstance(node, py.expr)
            yield node


def _is_string_expression(node: py.AST) -> bool:
    if isinstance(node, py.Constant):
        return isinstance(node.value, str)
    if isinstance(node, py.JoinedStr):
        return True
    if isinstance(node, py.BinOp) and isinstance(node.op, py.Add):
        return _is_string_expression(node.left) or _is_string_expression(node.right)
    return False


_FIRST_WORD = re.compile(r"\s*(?:--[^\n]*\n\s*)*([A-Za-z]+)\b")


def _sql_kind(template: Template) -> str | None:
    """'must' when the text is clearly SQL, 'may' when it is SQL only if it parses, else None."""
    if not template or not isinstance(template[0], str):
        return None
    match = _FIRST_WORD.match(template[0])
    if match is None:
        return None
    word = match.group(1)
    if word in SQL_KEYWORDS:
        return "must"
    if word.islower() and word.upper() in SQL_KEYWORDS:
        return "may"
    return None


def _fill(template: Template) -> tuple[str, list[str]] | ParseError:
    """The first way of filling the holes that parses: (SQL, hole sources), or the error of the first attempt."""
    holes = [part for part in template if isinstance(part, Hole)]
    choices: list[tuple[str, ...]] = []
    previous = ""
    for part in template:
        if isinstance(part, Hole):
            # After `$` the value can only be a parameter number.
            choices.append(("1",) if previous.endswith("$") else _PLACEHOLDER_CANDIDATES)
            previous = ""
        else:
            previous += part
    first_error: ParseError | None = None
    for filling in itertools.islice(itertools.product(*choices), _MAX_ATTEMPTS):
        values = iter(filling)
        sql = "".join(part if isinstance(part, str) else next(values) for part in template)
        try:
            parse_sql(sql)
        except ParseError as error:
            first_error = first_error or error
            continue
        return sql, [hole.source for hole in holes]
    assert first_error is not None
    return first_error


@dataclass
class Collection:
    statements: list[Statement] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)  # SQL that cannot be analysed

    def extend(self, other: Collection) -> None:
        self.statements += other.statements
        self.problems += other.problems


def collect_source(source: str, path: str) -> Collection:
    """The SQL statements in the string expressions of Python source."""
    tree = py.parse(source, filename=path)
    module = _Module(tree)
    collection = Collection()
    backwards = [
        (node.lineno, node.end_lineno or node.lineno)
        for node in tree.body
        if isinstance(node, py.Assign) and any(isinstance(t, py.Name) and t.id == "BACKWARDS" for t in node.targets)
    ]
    for root in module.string_roots(tree):
        alternatives = list(dict.fromkeys(module.templates(root)))
        kind = _sql_kind(alternatives[0]) if alternatives else None
        if kind is None:
            continue
        seen: set[str] = set()
        for template in alternatives:
            filled = _fill(template)
            if isinstance(filled, ParseError):
                if kind == "must":
                    holes = [part.source for part in template if isinstance(part, Hole)]
                    with_holes = f" (with placeholders for {', '.join(holes)})" if holes else ""
                    excerpt = " ".join("".join(p if isinstance(p, str) else "{…}" for p in template).split())
                    collection.problems.append(
                        Finding(path, root.lineno, f"SQL that does not parse{with_holes}: {filled}", excerpt[:110])
                    )
                continue
            sql, holes = filled
            if sql in seen:
                continue
            seen.add(sql)
            for statement in statements_of(sql, path, root.lineno):
                unresolved = [
                    node
                    for node in _walk(statement.node)
                    if isinstance(node, ast.RangeVar) and node.relname == PLACEHOLDER
                ]
                if unresolved:
                    message = f"a table name comes from {', '.join(holes)}, which the checker cannot resolve"
                    collection.problems.append(statement.finding(message, unresolved[0].location))
                else:
                    in_backwards = any(first <= root.lineno <= last for first, last in backwards)
                    collection.statements.append(replace(statement, backwards=in_backwards))
    return collection


def collect(root: Path, paths: Iterable[Path]) -> Collection:
    collection = Collection()
    for path in sorted(paths):
        collection.extend(collect_source(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix()))
    return collection


# --- The schema the migrations build ------------------------------------------------------------------------------


@dataclass
class Schema:
    columns: dict[str, list[str]] = field(default_factory=dict)
    primary_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    volatile_defaults: dict[str, set[str]] = field(default_factory=dict)  # table -> columns

    @property
    def tenant_tables(self) -> frozenset[str]:
        return frozenset(t for t, columns in self.columns.items() if TENANT_COLUMN in columns) - REFERENCE_TABLES

    @classmethod
    def from_statements(cls, statements: Iterable[Statement]) -> Schema:
        schema = cls()
        for statement in statements:
            schema.apply(statement.node)
        return schema

    @classmethod
    def from_sql(cls, *sql: str) -> Schema:
        return cls.from_statements(s for text in sql for s in statements_of(text))

    def apply(self, node: ast.Node) -> None:
        if isinstance(node, ast.CreateStmt):
            table = _table(node.relation)
            self.columns[table] = []
            self.volatile_defaults[table] = set()
            for element in node.tableElts or ():
                if isinstance(element, ast.ColumnDef):
                    self._add_column(table, element)
                elif isinstance(element, ast.Constraint) and element.contype == ConstrType.CONSTR_PRIMARY:
                    self.primary_keys[table] = _names(element.keys)
        elif isinstance(node, ast.AlterTableStmt):
            table = _table(node.relation)
            for command in node.cmds or ():
                if command.subtype == AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
                    self._add_column(table, command.def_)
                elif command.subtype == AlterTableType.AT_DropColumn and command.name:
                    columns = self.columns.get(table, [])
                    if command.name in columns:
                        columns.remove(command.name)
                elif (
                    command.subtype == AlterTableType.AT_AddConstraint
                    and isinstance(command.def_, ast.Constraint)
                    and command.def_.contype == ConstrType.CONSTR_PRIMARY
                ):
                    self.primary_keys[table] = _names(command.def_.keys)
        elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
            for name in node.objects or ():
                table = _names(name)[-1]
                self.columns.pop(table, None)
                self.primary_keys.pop(table, None)

    def _add_column(self, table: str, column: ast.ColumnDef) -> None:
        name = column.colname or ""
        self.columns.setdefault(table, []).append(name)
        for constraint in column.constraints or ():
            if constraint.contype == ConstrType.CONSTR_PRIMARY:
                self.primary_keys[table] = (name,)
            elif constraint.contype == ConstrType.CONSTR_DEFAULT and _volatile_calls(constraint.raw_expr):
                self.volatile_defaults.setdefault(table, set()).add(name)


# --- Walking pglast trees -----------------------------------------------------------------------------------------


def _walk(value: object) -> Iterator[ast.Node]:
    """A node and every node below it, parents first."""
    if isinstance(value, ast.Node):
        yield value
        for attribute in value:
            yield from _walk(getattr(value, attribute))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _walk(item)


def _table(relation: ast.RangeVar | None) -> str:
    return (relation.relname or "") if relation is not None else ""


def _names(strings: object) -> tuple[str, ...]:
    if not isinstance(strings, tuple | list):
        return ()
    return tuple(item.sval or "" for item in strings if isinstance(item, ast.String))


def _function_name(call: ast.FuncCall) -> str:
    return _names(call.funcname)[-1].lower()


def _volatile_calls(node: object) -> list[ast.FuncCall]:
    return [n for n in _walk(node) if isinstance(n, ast.FuncCall) and _function_name(n) in VOLATILE_FUNCTIONS]


def _value_function_name(node: ast.SQLValueFunction) -> str:
    operation = node.op.name if node.op is not None else "?"
    return operation.removeprefix("SVFOP_").removesuffix("_N").lower()


def _render(node: ast.Node) -> str:
    return str(RawStream()(node))


# --- The rules ----------------------------------------------------------------------------------------------------


def _columns(keys: Sequence[str]) -> str:
    return "(" + ", ".join(keys) + ")"


def _key_problem(table: str, constraint: ast.Constraint, column: str | None, schema: Schema) -> str | None:
    kind = constraint.contype
    if kind in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE):
        keys = _names(constraint.keys) or ((column,) if column else ())
        if TENANT_COLUMN not in keys:
            what = "primary key" if kind == ConstrType.CONSTR_PRIMARY else "unique key"
            return f"{what} {_columns(keys)} of tenant table {table} does not include {TENANT_COLUMN}"
    elif kind == ConstrType.CONSTR_EXCLUSION:
        equal = [
            element.name
            for element, operator in constraint.exclusions or ()
            if isinstance(element, ast.IndexElem) and _names(operator) == ("=",)
        ]
        if TENANT_COLUMN not in equal:
            return f"exclusion constraint of tenant table {table} has no `{TENANT_COLUMN} WITH =`"
    elif kind == ConstrType.CONSTR_FOREIGN:
        target = _table(constraint.pktable)
        keys = _names(constraint.fk_attrs) or ((column,) if column else ())
        referenced = _names(constraint.pk_attrs) or schema.primary_keys.get(target, ())
        foreign_key = f"foreign key {_columns(keys)} -> {target} {_columns(referenced)} of tenant table {table}"
        if target in REFERENCE_TABLES:
            return None
        if target not in schema.tenant_tables:
            return f"{foreign_key} references a table that is neither a tenant table nor a reference table"
        if keys[:1] != (TENANT_COLUMN,) or referenced[:1] != (TENANT_COLUMN,):
            return f"{foreign_key} does not lead with {TENANT_COLUMN} on both sides"
    return None


def key_findings(statement: Statement, schema: Schema) -> list[Finding]:
    """Primary keys, unique keys and indexes, exclusion constraints and foreign keys of tenant tables."""
    node = statement.node
    constraints: list[tuple[ast.Constraint, str | None]] = []
    if isinstance(node, ast.CreateStmt | ast.AlterTableStmt):
        table = _table(node.relation)
        if table not in schema.tenant_tables:
            return []
        if isinstance(node, ast.CreateStmt):
            elements = list(node.tableElts or ())
        else:
            adding = (AlterTableType.AT_AddColumn, AlterTableType.AT_AddConstraint)
            elements = [command.def_ for command in node.cmds or () if command.subtype in adding]
        for element in elements:
            if isinstance(element, ast.ColumnDef):
                constraints += [(c, element.colname) for c in element.constraints or ()]
            elif isinstance(element, ast.Constraint):
                constraints.append((element, None))
        findings = []
        for constraint, column in constraints:
            problem = _key_problem(table, constraint, column, schema)
            if problem is not None:
                findings.append(statement.finding(problem, constraint.location))
        return findings
    if isinstance(node, ast.IndexStmt) and node.unique and _table(node.relation) in schema.tenant_tables:
        elements = [e.name or (_render(e.expr) if e.expr is not None else "?") for e in node.indexParams or ()]
        if TENANT_COLUMN not in elements:
            table = _table(node.relation)
            name = f" {node.idxname}" if node.idxname else ""
            problem = (
                f"unique index{name} {_columns(elements)} of tenant table {table} does not include {TENANT_COLUMN}"
            )
            return [statement.finding(problem, node.relation.location if node.relation is not None else None)]
    return []


def _modified_tables(node: ast.Node, schema: Schema) -> dict[str, list[ast.ResTarget]]:
    """Tenant and reference tables that a statement updates or deletes from (anywhere in it), with their SET
    targets. An INSERT ... ON CONFLICT DO UPDATE updates too."""
    modified: dict[str, list[ast.ResTarget]] = {}
    for inner in _walk(node):
        if isinstance(inner, ast.UpdateStmt | ast.DeleteStmt):
            table = _table(inner.relation)
            targets = list(inner.targetList or ()) if isinstance(inner, ast.UpdateStmt) else []
        elif (
            isinstance(inner, ast.InsertStmt)
            and inner.onConflictClause is not None
            and inner.onConflictClause.action == OnConflictAction.ONCONFLICT_UPDATE
        ):
            table = _table(inner.relation)
            targets = list(inner.onConflictClause.targetList or ())
        else:
            continue
        if table in schema.tenant_tables or table in REFERENCE_TABLES:
            modified.setdefault(table, []).extend(t for t in targets if isinstance(t, ast.ResTarget))
    return modified


def volatile_findings(statement: Statement, schema: Schema) -> list[Finding]:
    """No volatile function in a statement that updates or deletes rows of a tenant table (or of a reference
    table: each of its copies would get another value)."""
    modified = _modified_tables(statement.node, schema)
    if not modified:
        return []
    tables = ", ".join(f"{'reference' if t in REFERENCE_TABLES else 'tenant'} table {t}" for t in sorted(modified))
    findings = [
        statement.finding(
            f"volatile {_function_name(call)}() in a statement that updates or deletes rows of {tables}: "
            "pass the value from the application",
            call.location,
        )
        for call in _volatile_calls(statement.node)
    ]
    for table, targets in modified.items():
        for target in targets:
            if isinstance(target.val, ast.SetToDefault) and target.name in schema.volatile_defaults.get(table, ()):
                findings.append(
                    statement.finding(
                        f"{target.name} = DEFAULT evaluates a volatile default of tenant table {table}: "
                        "pass the value from the application",
                        target.location,
                    )
                )
    return findings


def _from_relations(items: object) -> Iterator[ast.RangeVar]:
    """The tables of a FROM clause, through joins (not into subqueries)."""
    for item in items if isinstance(items, tuple | list) else (items,):
        if isinstance(item, ast.RangeVar):
            yield item
        elif isinstance(item, ast.JoinExpr):
            yield from _from_relations(item.larg)
            yield from _from_relations(item.rarg)


def _join_conditions(items: object) -> Iterator[ast.Node]:
    for item in items if isinstance(items, tuple | list) else (items,):
        if isinstance(item, ast.JoinExpr):
            if item.quals is not None:
                yield item.quals
            yield from _join_conditions(item.larg)
            yield from _join_conditions(item.rarg)


def _conjuncts(condition: ast.Node | None) -> Iterator[ast.Node]:
    if isinstance(condition, ast.BoolExpr) and condition.boolop == BoolExprType.AND_EXPR:
        for argument in condition.args or ():
            yield from _conjuncts(argument)
    elif condition is not None:
        yield condition


def _is_parameter(node: object) -> bool:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return isinstance(node, ast.ParamRef)


def _tenant_column_of(node: object) -> str | None:
    """For a reference to a tenant_id column: its qualifier ('' when unqualified); else None."""
    if not isinstance(node, ast.ColumnRef):
        return None
    fields = _names(node.fields)
    if not fields or fields[-1] != TENANT_COLUMN or len(fields) != len(node.fields or ()):
        return None
    return fields[-2] if len(fields) > 1 else ""


def _tenant_parameter_qualifiers(conditions: Iterable[ast.Node | None]) -> set[str]:
    """Qualifiers of the `tenant_id = $n` conditions among top-level conjuncts ('' for an unqualified one)."""
    qualifiers: set[str] = set()
    for condition in conditions:
        for conjunct in _conjuncts(condition):
            if not (
                isinstance(conjunct, ast.A_Expr)
                and conjunct.kind == A_Expr_Kind.AEXPR_OP
                and _names(conjunct.name) == ("=",)
            ):
                continue
            for column, value in ((conjunct.lexpr, conjunct.rexpr), (conjunct.rexpr, conjunct.lexpr)):
                qualifier = _tenant_column_of(column)
                if qualifier is not None and _is_parameter(value):
                    qualifiers.add(qualifier)
    return qualifiers


_LOCK_NAMES = {
    LockClauseStrength.LCS_FORKEYSHARE: "FOR KEY SHARE",
    LockClauseStrength.LCS_FORSHARE: "FOR SHARE",
    LockClauseStrength.LCS_FORNOKEYUPDATE: "FOR NO KEY UPDATE",
    LockClauseStrength.LCS_FORUPDATE: "FOR UPDATE",
}


def row_lock_findings(statement: Statement, schema: Schema) -> list[Finding]:
    """A row lock on a tenant table needs `<table>.tenant_id = $n` in the WHERE or a join condition."""
    findings = []
    for node in _walk(statement.node):
        if not isinstance(node, ast.SelectStmt) or not node.lockingClause:
            continue
        relations = list(_from_relations(node.fromClause))
        qualifiers = _tenant_parameter_qualifiers([*_join_conditions(node.fromClause), node.whereClause])
        for clause in node.lockingClause:
            named = {_table(relation) for relation in clause.lockedRels or ()}
            for relation in relations:
                table = _table(relation)
                reference = (relation.alias.aliasname if relation.alias is not None else None) or table
                if named and reference not in named:
                    continue
                if table not in schema.tenant_tables or {"", reference} & qualifiers:
                    continue
                lock = _LOCK_NAMES.get(clause.strength, "a row lock")
                findings.append(
                    statement.finding(
                        f"{lock} locks rows of tenant table {table} with no "
                        f"`{reference}.{TENANT_COLUMN} = $n` condition: the lock spans tenants (every shard)",
                        relation.location,
                    )
                )
    return findings


def case_coalesce_findings(statement: Statement, schema: Schema) -> list[Finding]:
    """No non-immutable function inside a CASE expression or a COALESCE call."""
    findings = []
    reported: set[int] = set()
    for node in _walk(statement.node):
        if not isinstance(node, ast.CaseExpr | ast.CoalesceExpr):
            continue
        construct = "CASE" if isinstance(node, ast.CaseExpr) else "COALESCE"
        for inner in _walk(node):
            if isinstance(inner, ast.FuncCall) and _function_name(inner) in NON_IMMUTABLE_FUNCTIONS:
                name = f"{_function_name(inner)}()"
            elif isinstance(inner, ast.SQLValueFunction):
                name = _value_function_name(inner)
            else:
                continue
            if id(inner) in reported:
                continue
            reported.add(id(inner))
            findings.append(
                statement.finding(
                    f"{name} inside {construct}: Citus refuses non-immutable functions in CASE and COALESCE "
                    "(least()/greatest() are fine, or pass the value)",
                    inner.location,
                )
            )
    return findings


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    check: Callable[[Statement, Schema], list[Finding]]


KEYS = Rule(
    "keys", "every primary key, unique key/index and foreign key of a tenant table includes tenant_id", key_findings
)
VOLATILE = Rule(
    "volatile", "no volatile function in a statement that updates or deletes rows of a tenant table", volatile_findings
)
ROW_LOCKS = Rule(
    "row_locks", "a row lock on a tenant table is limited to one tenant by `tenant_id = $n`", row_lock_findings
)
CASE_COALESCE = Rule("case_coalesce", "no non-immutable function inside CASE or COALESCE", case_coalesce_findings)
RULES = (KEYS, VOLATILE, ROW_LOCKS, CASE_COALESCE)


def check(rule: Rule, statements: Iterable[Statement], schema: Schema) -> list[Finding]:
    """The rule's findings, sorted, one per place and message (the alternatives of one string repeat them)."""
    findings: dict[tuple[str, int, str], Finding] = {}
    for statement in statements:
        for finding in rule.check(statement, schema):
            findings.setdefault((finding.path, finding.line, finding.message), finding)
    return sorted(findings.values())


def report(title: str, findings: Sequence[Finding]) -> str:
    return "\n".join([f"{len(findings)} violation(s) of: {title}", *(f"  {finding}" for finding in findings)])


# --- The project --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    app: Collection
    migrations: Collection
    schema: Schema

    @property
    def statements(self) -> list[Statement]:
        return self.migrations.statements + self.app.statements

    @property
    def problems(self) -> list[Finding]:
        return self.migrations.problems + self.app.problems


def load_project(root: Path) -> Project:
    migrations = collect(root, (root / "migrations").glob("*.py"))
    app = collect(root, (root / "app").rglob("*.py"))
    # Migration files sort by their timestamped names: the order they run in. Backwards steps undo the schema, so
    # the schema the code runs against is built from the forward steps alone.
    forwards = [statement for statement in migrations.statements if not statement.backwards]
    return Project(app, migrations, Schema.from_statements(forwards))
