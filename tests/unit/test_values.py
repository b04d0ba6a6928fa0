"""Ticket values: the contract's clear values, and what makes a value unstorable before any schema sees it."""

from __future__ import annotations

from typing import Any

import pytest

from app.ticket_type.values import EMPTY_VALUES, MAX_VALUE_DEPTH, is_empty, value_problem

NUL = "text may not contain the NUL character (\\u0000)"


def nested_lists(depth: int, leaf: Any = 1) -> Any:
    """`leaf` inside `depth` lists, built without recursion so that very deep values can be made."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_objects(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "empty"),
    [
        pytest.param(None, True, id="null"),
        pytest.param("", True, id="empty-string"),
        pytest.param([], True, id="empty-array"),
        pytest.param(" ", False, id="blank-string"),
        pytest.param(0, False, id="zero"),
        pytest.param(0.0, False, id="zero-float"),
        pytest.param(False, False, id="false"),
        pytest.param({}, False, id="empty-object"),
        pytest.param([None], False, id="array-of-null"),
        pytest.param([""], False, id="array-of-empty-string"),
        pytest.param("null", False, id="string-null"),
    ],
)
def test_is_empty_only_for_the_contract_clear_values(value: Any, empty: bool) -> None:
    assert is_empty(value) is empty


def test_empty_values_are_the_three_clear_values() -> None:
    assert list(EMPTY_VALUES) == [None, "", []]
    assert all(is_empty(value) for value in EMPTY_VALUES)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("plain text", None, id="text"),
        pytest.param({"a": [1, 2.5, True, None, "x"]}, None, id="mixed-document"),
        pytest.param("a\x00b", NUL, id="nul-in-text"),
        pytest.param(["ok", "a\x00"], NUL, id="nul-in-array-item"),
        pytest.param({"a": {"b": "\x00"}}, NUL, id="nul-in-nested-value"),
        pytest.param({"a\x00": 1}, NUL, id="nul-in-key"),
        pytest.param({"a": {"b\x00c": 1}}, NUL, id="nul-in-nested-key"),
        pytest.param("\\u0000", None, id="escaped-nul-is-just-text"),
        pytest.param(nested_lists(MAX_VALUE_DEPTH), None, id="lists-at-the-limit"),
        pytest.param(
            nested_lists(MAX_VALUE_DEPTH + 1), "value nests deeper than 32 levels", id="lists-one-past-the-limit"
        ),
        pytest.param(nested_objects(MAX_VALUE_DEPTH), None, id="objects-at-the-limit"),
        pytest.param(
            nested_objects(MAX_VALUE_DEPTH + 1), "value nests deeper than 32 levels", id="objects-one-past-the-limit"
        ),
        pytest.param(
            nested_lists(MAX_VALUE_DEPTH + 1, leaf="\x00"),
            "value nests deeper than 32 levels",
            id="depth-reported-for-deep-nul",
        ),
    ],
)
def test_value_problem(value: Any, problem: str | None) -> None:
    assert value_problem(value) == problem


def test_value_problem_honours_a_custom_limit() -> None:
    assert value_problem(nested_lists(3), limit=3) is None
    assert value_problem(nested_lists(4), limit=3) == "value nests deeper than 3 levels"


def test_very_deep_values_are_refused_without_recursion() -> None:
    # Far past Python's recursion limit: the check is iterative, so it answers instead of raising RecursionError.
    assert value_problem(nested_lists(10_000)) == "value nests deeper than 32 levels"
    assert value_problem(nested_objects(10_000)) == "value nests deeper than 32 levels"
