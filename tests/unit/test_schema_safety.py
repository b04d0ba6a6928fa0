"""Administrators' JSON Schemas are hostile input: `schema_problem` refuses what could not run safely, and
`safe_validator` runs patterns on RE2 and checks uniqueItems in linear time."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from referencing.exceptions import Unresolvable

import app.schema_validation as schema_validation
from app.schema_validation import (
    MAX_MESSAGE,
    MAX_SCHEMA_DEPTH,
    first_error,
    json_path,
    safe_validator,
    schema_problem,
)

ONLY_DEFS = "only references to this schema's $defs (#/$defs/name)"


def nested_nots(depth: int) -> dict[str, Any]:
    """A schema whose innermost subschema sits `depth` levels below the root."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"not": schema}
    return schema


def doubling_chain(length: int) -> dict[str, Any]:
    """$defs d0..d{length}, each referring to the next twice: 2**length subschemas once expanded."""
    defs: dict[str, Any] = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(length)}
    defs[f"d{length}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param({}, id="empty"),
        pytest.param({"type": "string", "maxLength": 10, "pattern": "^[a-z]+$"}, id="string-with-pattern"),
        pytest.param(
            {"$defs": {"name": {"type": "string"}}, "type": "array", "items": {"$ref": "#/$defs/name"}},
            id="ref-to-defs",
        ),
        pytest.param(
            {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "integer"}}, "$ref": "#/$defs/a"},
            id="ref-chain-without-cycle",
        ),
        pytest.param(doubling_chain(10), id="doubling-chain-of-1024"),
        pytest.param(nested_nots(MAX_SCHEMA_DEPTH), id="nested-to-the-limit"),
        # Data keywords are not schemas: what they hold is never treated as a keyword.
        pytest.param({"const": {"pattern": "(a)\\1", "$ref": "http://x", "$id": "x"}}, id="keywords-inside-const"),
        pytest.param({"enum": [{"patternProperties": {}}]}, id="keywords-inside-enum"),
        pytest.param({"default": {"$dynamicRef": "#x"}}, id="keywords-inside-default"),
        # Property names are names, not keywords.
        pytest.param(
            {"properties": {"$id": {"type": "string"}, "pattern": {}, "patternProperties": {}}},
            id="keyword-like-property-names",
        ),
    ],
)
def test_acceptable_schemas(schema: dict[str, Any]) -> None:
    assert schema_problem(schema) is None


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        pytest.param({"enum": ["x" * 40_000]}, "larger than 32768 bytes", id="oversize"),
        pytest.param(nested_nots(MAX_SCHEMA_DEPTH + 1), "nested deeper than 32 levels", id="too-deep"),
        pytest.param(
            {"type": "object", "patternProperties": {"^a": {}}},
            "patternProperties is not supported (its regexes would not run on RE2)",
            id="patternProperties",
        ),
        pytest.param(
            {"properties": {"a": {"items": {"patternProperties": {}}}}},
            "patternProperties is not supported (its regexes would not run on RE2)",
            id="nested-patternProperties",
        ),
        pytest.param({"$dynamicRef": "#meta"}, "$dynamicRef is not supported", id="dynamicRef"),
        pytest.param({"$id": "urn:x"}, "$id is not supported: these schemas are anonymous", id="id"),
        pytest.param(
            {"allOf": [{"$id": "https://example.com/s"}]},
            "$id is not supported: these schemas are anonymous",
            id="nested-id",
        ),
        pytest.param(
            {"$ref": "https://example.com/schema.json"},
            f"$ref 'https://example.com/schema.json' is not supported: {ONLY_DEFS}",
            id="external-ref-url",
        ),
        pytest.param(
            {"$ref": "other.json#/$defs/a"},
            f"$ref 'other.json#/$defs/a' is not supported: {ONLY_DEFS}",
            id="external-ref-relative",
        ),
        pytest.param(
            {"$ref": "file:///etc/passwd"},
            f"$ref 'file:///etc/passwd' is not supported: {ONLY_DEFS}",
            id="external-ref-file",
        ),
        pytest.param({"$ref": "#"}, f"$ref '#' is not supported: {ONLY_DEFS}", id="ref-to-root"),
        pytest.param({"$ref": "#anchor"}, f"$ref '#anchor' is not supported: {ONLY_DEFS}", id="ref-to-anchor"),
        pytest.param(
            {"properties": {"a": {}}, "$ref": "#/properties/a"},
            f"$ref '#/properties/a' is not supported: {ONLY_DEFS}",
            id="ref-outside-defs",
        ),
        pytest.param(
            {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
            "recursive $ref is not supported",
            id="self-recursive-def",
        ),
        pytest.param(
            {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"items": {"$ref": "#/$defs/a"}}}},
            "recursive $ref is not supported",
            id="mutually-recursive-defs",
        ),
        pytest.param(
            {
                "$defs": {"node": {"properties": {"children": {"items": {"$ref": "#/$defs/node"}}}}},
                "$ref": "#/$defs/node",
            },
            "recursive $ref is not supported",
            id="recursive-tree",
        ),
        pytest.param(
            doubling_chain(14),
            "expands to more than 10000 subschemas through its $refs",
            id="exponential-expansion",
        ),
        pytest.param(
            {"type": "strin"},
            "not a valid JSON Schema 2020-12: 'strin' is not valid under any of the given schemas at type",
            id="unknown-type",
        ),
        pytest.param(
            {"minLength": -1},
            "not a valid JSON Schema 2020-12: -1 is less than the minimum of 0 at minLength",
            id="negative-minLength",
        ),
        pytest.param(
            {"properties": {"a": {"required": "b"}}},
            "not a valid JSON Schema 2020-12: 'b' is not of type 'array' at properties.a.required",
            id="nested-invalid-keyword",
        ),
    ],
)
def test_refused_schemas(schema: dict[str, Any], problem: str) -> None:
    assert schema_problem(schema) == problem


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("(a)\\1", id="backreference"),
        pytest.param("(?P<x>a)(?P=x)", id="named-backreference"),
        pytest.param("a(?=b)", id="lookahead"),
        pytest.param("a(?!b)", id="negative-lookahead"),
        pytest.param("(?<=a)b", id="lookbehind"),
        pytest.param("(?<!a)b", id="negative-lookbehind"),
        pytest.param("(", id="unbalanced"),
    ],
)
@pytest.mark.parametrize("where", ["root", "nested"])
def test_patterns_re2_cannot_run_are_refused(pattern: str, where: str) -> None:
    schema = {"pattern": pattern} if where == "root" else {"items": {"properties": {"a": {"pattern": pattern}}}}
    problem = schema_problem(schema)
    assert problem is not None
    prefix = f"pattern {pattern!r} is not supported: "
    suffix = " (RE2: no backreferences or look-around)"
    assert problem.startswith(prefix), problem
    assert problem.endswith(suffix), problem
    assert problem[len(prefix) : -len(suffix)].strip(), "RE2's own explanation is included"


def test_refusal_checks_come_before_json_schema_validity() -> None:
    # An invalid schema with a refused keyword is reported for the keyword (the cheaper, more useful message).
    assert schema_problem({"type": 5, "$id": "x"}) == "$id is not supported: these schemas are anonymous"


# --- safe_validator: RE2 patterns ------------------------------------------------------------------------------


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    # On Python's backtracking `re`, `(a+)+$` against 30 a's and a mismatch takes minutes; on RE2, microseconds.
    validator = safe_validator({"pattern": "(a+)+$"})
    started = time.perf_counter()
    assert first_error(validator, "a" * 30 + "!") == "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' does not match '(a+)+$'"
    assert first_error(validator, "a" * 100_000 + "!") is not None
    assert first_error(validator, "!" + "a" * 100_000) is None
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        pytest.param("^abc$", "abc", True, id="exact"),
        # Python's `re` lets `$` match before a trailing newline; ECMA-262 (and RE2) does not.
        pytest.param("^abc$", "abc\n", False, id="dollar-before-trailing-newline"),
        pytest.param("^[a-z]+$", "abc\ndef", False, id="dollar-not-multiline"),
        pytest.param("b", "abc", True, id="search-not-match"),
        pytest.param("^b", "abc", False, id="anchored"),
        pytest.param("^\\d{3}$", "123", True, id="digit-class"),
        pytest.param("^é+$", "éé", True, id="unicode"),
    ],
)
def test_pattern_semantics(pattern: str, value: str, matches: bool) -> None:
    error = first_error(safe_validator({"type": "string", "pattern": pattern}), value)
    assert error == (None if matches else f"{value!r} does not match {pattern!r}")


def test_pattern_ignores_non_strings() -> None:
    assert first_error(safe_validator({"pattern": "^a$"}), 5) is None


def test_a_pattern_re2_cannot_run_is_an_error_not_a_crash() -> None:
    # safe_validator on a schema that never went through schema_problem (defence in depth).
    error = first_error(safe_validator({"pattern": "(a)\\1"}), "aa")
    assert error is not None
    assert error.startswith("pattern '(a)\\\\1' cannot be used: ")


# --- safe_validator: uniqueItems -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        pytest.param([1, 2, 3], True, id="distinct-numbers"),
        pytest.param([1, 1.0], False, id="int-and-equal-float"),
        pytest.param([1.5, 1.5], False, id="equal-floats"),
        pytest.param([1, 1.5], True, id="int-and-other-float"),
        pytest.param([1, "1"], True, id="number-and-string"),
        pytest.param([1, True], True, id="one-and-true"),
        pytest.param([0, False], True, id="zero-and-false"),
        pytest.param([None, False], True, id="null-and-false"),
        pytest.param([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False, id="reordered-objects"),
        pytest.param([{"a": 1.0}, {"a": 1}], False, id="objects-with-equal-numbers"),
        pytest.param([[1, 2], [2, 1]], True, id="arrays-are-ordered"),
        pytest.param([[1.0, {"x": [2.0]}], [1, {"x": [2]}]], False, id="deeply-equal"),
        pytest.param([], True, id="empty"),
    ],
)
def test_unique_items_uses_json_equality(items: list[Any], unique: bool) -> None:
    error = first_error(safe_validator({"uniqueItems": True}), items)
    assert error == (None if unique else "array items are not unique")


def test_unique_items_false_checks_nothing() -> None:
    assert first_error(safe_validator({"uniqueItems": False}), [1, 1]) is None


def test_unique_items_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    # Objects cannot be sorted, so jsonschema's own check would compare every pair: 20 000 items, 2e8 comparisons.
    calls = 0
    canonical_form = schema_validation._canonical_form

    def counting(value: Any) -> bytes:
        nonlocal calls
        calls += 1
        return canonical_form(value)

    monkeypatch.setattr(schema_validation, "_canonical_form", counting)
    items = [{"n": n} for n in range(20_000)]
    validator = safe_validator({"type": "array", "uniqueItems": True})
    started = time.perf_counter()
    assert first_error(validator, items) is None
    assert calls == len(items)
    assert first_error(validator, [*items, {"n": 0}]) == "array items are not unique"
    assert time.perf_counter() - started < 2.0


# --- first_error and json_path ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        pytest.param([], "", id="root"),
        pytest.param(["name"], "name", id="member"),
        pytest.param(["fields", 2, "schema"], "fields[2].schema", id="member-index-member"),
        pytest.param([0, "a"], "[0].a", id="leading-index"),
        pytest.param(["a", 0, 1], "a[0][1]", id="consecutive-indices"),
    ],
)
def test_json_path(parts: list[Any], path: str) -> None:
    assert json_path(parts) == path


def test_first_error_locates_the_problem() -> None:
    validator = safe_validator({"properties": {"a": {"items": {"type": "string"}}}})
    assert first_error(validator, {"a": ["x", "y", 3]}) == "a[2]: 3 is not of type 'string'"
    assert first_error(validator, {"a": ["x"]}) is None


def test_first_error_reports_one_problem_only() -> None:
    validator = safe_validator({"items": {"type": "string"}})
    assert first_error(validator, [1, 2, 3]) == "[0]: 1 is not of type 'string'"


def test_first_error_cuts_long_messages_keeping_both_ends() -> None:
    value = "x" * 1000
    error = first_error(safe_validator({"maxLength": 5}), value)
    assert error is not None
    assert len(error) == MAX_MESSAGE
    head, _, tail = error.partition("…")
    assert head == "'" + "x" * (MAX_MESSAGE // 2 - 1)
    assert tail.endswith("x' is too long")
    assert len(tail) == MAX_MESSAGE // 2 - 1


def test_first_error_keeps_short_messages_whole() -> None:
    assert first_error(safe_validator({"maxLength": 5}), "abcdefg") == "'abcdefg' is too long"


def test_no_reference_leaves_the_document() -> None:
    # Even if a schema with an external $ref reached the validator, nothing would be fetched.
    validator = safe_validator({"$ref": "https://example.com/never-fetched.json"})
    with pytest.raises(Unresolvable, match=re.escape("https://example.com/never-fetched.json")):
        first_error(validator, 1)


@pytest.mark.parametrize(
    ("schema", "name"),
    [
        pytest.param({"$ref": "#/$defs/missing"}, "missing", id="no-defs"),
        pytest.param({"$defs": {"present": {}}, "items": {"$ref": "#/$defs/absent"}}, "absent", id="other-name"),
        # $defs below the root: a reference resolves against the root, where there is none.
        pytest.param({"properties": {"x": {"$defs": {"b": {}}, "$ref": "#/$defs/b"}}}, "b", id="nested-defs"),
    ],
)
def test_a_ref_to_no_definition_is_refused(schema: dict[str, Any], name: str) -> None:
    # Accepted, it would make every later validation raise (a 500 on every ticket write), not report a problem.
    assert schema_problem(schema) == f"$ref '#/$defs/{name}' names no entry of this schema's $defs"
