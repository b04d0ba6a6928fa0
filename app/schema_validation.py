"""JSON Schema validation that stays safe on hostile schemas and hostile input.

Python's `re` backtracks: a pattern like `(a+)+$` takes exponential time on a crafted string, and its `$` also
matches before a trailing newline (ECMA-262, which JSON Schema follows, does not). So `pattern` runs on RE2: linear
time, refuses backreferences and look-around, and `$` means end of text. `uniqueItems` is checked in linear time
(jsonschema falls back to comparing every pair). patternProperties, whose regexes jsonschema would run on `re`, is
refused in administrators' schemas, as are references outside the schema, recursion and exponential expansion
(`schema_problem`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
import re2
from jsonschema import Draft202012Validator, SchemaError, ValidationError, validators
from referencing import Registry

MAX_SCHEMA_BYTES = 32 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_EXPANDED_NODES = 10_000
MAX_MESSAGE = 300

# Keywords refused in administrators' schemas: they would make jsonschema run regexes on Python's backtracking
# engine (patternProperties), or let a schema reach outside itself.
_REFUSED_KEYWORDS = {
    "patternProperties": "patternProperties is not supported (its regexes would not run on RE2)",
    "$dynamicRef": "$dynamicRef is not supported",
    "$id": "$id is not supported: these schemas are anonymous",
}

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported to the caller, not to stderr


class UnsafePattern(ValueError):
    """A regular expression RE2 cannot run (backreferences, look-around, invalid syntax)."""


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise UnsafePattern(message) from None


def json_path(parts: Iterable[Any]) -> str:
    """A jsonschema error path as a field name: fields[2].schema, realms[0].issuer."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        regex = compile_pattern(pattern)
    except UnsafePattern as exc:
        yield ValidationError(f"pattern {pattern!r} cannot be used: {exc}")
        return
    if regex.search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_canonical = msgspec.json.Encoder(order="sorted")


def _canonical_form(value: Any) -> bytes:
    """Equal JSON values (1 and 1.0, objects in any key order) encode to the same bytes."""
    return _canonical.encode(_normalise_numbers(value))


def _normalise_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normalise_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalise_numbers(item) for key, item in value.items()}
    return value


def _unique_items(validator: Any, unique: bool, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # jsonschema compares items pairwise when they cannot be sorted: quadratic time on a hostile array.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[bytes] = set()
    for item in instance:
        form = _canonical_form(item)
        if form in seen:
            yield ValidationError("array items are not unique")
            return
        seen.add(form)


SafeValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern, "uniqueItems": _unique_items}
)

# No $ref leaves the document: nothing is fetched from the network or read from disk.
NO_EXTERNAL_REFERENCES: Registry[Any] = Registry()


def safe_validator(schema: dict[str, Any]) -> Any:
    return SafeValidator(schema, registry=NO_EXTERNAL_REFERENCES)


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why an administrator's schema (a field's, a guard's) cannot be accepted, or None."""
    if len(msgspec.json.encode(schema)) > MAX_SCHEMA_BYTES:
        return f"larger than {MAX_SCHEMA_BYTES} bytes"
    references: dict[str, set[str]] = {}
    for depth, definition, node in _schema_nodes(schema):
        if depth > MAX_SCHEMA_DEPTH:
            return f"nested deeper than {MAX_SCHEMA_DEPTH} levels"
        for keyword in _REFUSED_KEYWORDS.keys() & node.keys():
            return _REFUSED_KEYWORDS[keyword]
        reference = node.get("$ref")
        if isinstance(reference, str):
            match = _LOCAL_DEFINITION.match(reference)
            if match is None:
                return f"$ref {reference!r} is not supported: only references to this schema's $defs (#/$defs/name)"
            references.setdefault(definition or "", set()).add(match.group(1))
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                compile_pattern(pattern)
            except UnsafePattern as exc:
                return f"pattern {pattern!r} is not supported: {exc} (RE2: no backreferences or look-around)"
    definitions = schema.get("$defs")
    defined = set(definitions) if isinstance(definitions, dict) else set()
    # A reference resolves against the root's $defs; one naming nothing would fail on every value, not on the schema.
    for name in sorted(set().union(*references.values()) - defined):
        return f"$ref '#/$defs/{name}' names no entry of this schema's $defs"
    if _has_cycle(references):
        return "recursive $ref is not supported"
    if _expanded_size(schema, references) > MAX_EXPANDED_NODES:
        return f"expands to more than {MAX_EXPANDED_NODES} subschemas through its $refs"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema 2020-12: {exc.message} at {json_path(exc.absolute_path) or 'root'}"
    return None


_LOCAL_DEFINITION = re.compile(r"^#/\$defs/([A-Za-z0-9_.-]+)$")
# Keywords whose values are data, not schemas: never walked for $ref, pattern or refused keywords.
VALUE_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Keywords whose values map names to schemas.
SCHEMA_MAPS = frozenset({"properties", "$defs", "dependentSchemas"})


def _schema_nodes(schema: Any) -> Iterator[tuple[int, str | None, dict[str, Any]]]:
    """Every subschema (as a dict) with its depth and the $defs entry it belongs to (None for the root)."""
    stack: list[tuple[int, str | None, Any]] = [(0, None, schema)]
    while stack:
        depth, definition, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield depth, definition, node
        for keyword, value in node.items():
            if keyword in VALUE_KEYWORDS:
                continue
            if keyword in SCHEMA_MAPS and isinstance(value, dict):
                for name, subschema in value.items():
                    owner = name if keyword == "$defs" and depth == 0 else definition
                    stack.append((depth + 1, owner, subschema))
            elif isinstance(value, dict):
                stack.append((depth + 1, definition, value))
            elif isinstance(value, list):
                stack.extend((depth + 1, definition, item) for item in value)


def _has_cycle(references: dict[str, set[str]]) -> bool:
    """Whether the $defs reference graph loops (a $ref chain that never ends, or a recursive schema)."""
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> bool:
        if name in done:
            return False
        if name in visiting:
            return True
        visiting.add(name)
        looped = any(visit(target) for target in references.get(name, ()))
        visiting.discard(name)
        done.add(name)
        return looped

    return any(visit(name) for name in list(references))


def _expanded_size(schema: dict[str, Any], references: dict[str, set[str]]) -> int:
    """How many subschemas validation may visit with every $ref expanded: a chain of definitions that each refer
    to the next twice doubles at every step, so a small schema could otherwise cost exponential time."""
    own: dict[str | None, int] = {}
    uses: dict[str | None, list[str]] = {}
    for _, definition, node in _schema_nodes(schema):
        owner = definition or None
        own[owner] = own.get(owner, 0) + 1
        reference = node.get("$ref")
        if isinstance(reference, str):
            uses.setdefault(owner, []).append(reference.rsplit("/", 1)[-1])
    sizes: dict[str | None, int] = {}

    def size(owner: str | None) -> int:
        if owner not in sizes:
            # No cycles (checked before): the recursion ends, and memoising makes it linear.
            sizes[owner] = own.get(owner, 0) + sum(size(target) for target in uses.get(owner, ()))
            sizes[owner] = min(sizes[owner], MAX_EXPANDED_NODES + 1)
        return sizes[owner]

    return size(None)


def first_error(validator: Any, value: Any) -> str | None:
    """The first problem only: validation stops there, so a hostile value cannot make us enumerate every error.
    Messages are cut, because jsonschema quotes the offending value and it may be huge."""
    error = next(validator.iter_errors(value), None)
    if error is None:
        return None
    location = json_path(error.absolute_path)
    message = error.message
    if len(message) > MAX_MESSAGE:
        # Keep both ends: the start of the quoted value and the verdict ("... is too long") that follows it.
        message = message[: MAX_MESSAGE // 2] + "…" + message[-(MAX_MESSAGE // 2 - 1) :]
    return f"{location}: {message}" if location else message
