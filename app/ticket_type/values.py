"""Ticket values: the contract's "clear" values, and what makes a value unstorable before any schema sees it."""

from __future__ import annotations

from typing import Any

MAX_VALUE_DEPTH = 32
EMPTY_VALUES: tuple[Any, ...] = (None, "", [])


def is_empty(value: Any) -> bool:
    """The contract's "clear" values: "", null and []."""
    return value is None or value == "" or value == []


def value_problem(value: Any, limit: int = MAX_VALUE_DEPTH) -> str | None:
    """What makes a value unstorable before any schema looks at it: nesting deeper than `limit` (checked
    iteratively, before recursive validation) or a NUL character, which PostgreSQL text and jsonb cannot hold."""
    stack = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return f"value nests deeper than {limit} levels"
        if isinstance(current, str):
            if "\x00" in current:
                return "text may not contain the NUL character (\\u0000)"
        elif isinstance(current, dict):
            if any("\x00" in key for key in current):
                return "text may not contain the NUL character (\\u0000)"
            stack.extend((v, depth + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current)
    return None
