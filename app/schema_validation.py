"""JSON Schema validation that stays safe on hostile schemas and hostile input.

Python's `re` backtracks: a pattern like `(a+)+$` takes exponential time on a crafted string, and its `$` also
matches before a trailing newline (ECMA-262, which JSON Schema follows, does not). So `pattern` runs on RE2: linear
time, refuses backreferences and look-around, and `$` means end of text. `uniqueItems` is checked in linear time
(jsonschema falls back to comparing every pair). patternProperties, whose regexes jsonschema would run on `re`, is
refused in field schemas (app/ticket_type/validators.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry

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
