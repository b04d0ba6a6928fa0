"""A ticket type's status workflow: which state may follow which, the guards on entering a state, the checks on a
workflow as written, and the state types a template's workflow implies."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from app.config import PROJECT_ROOT
from app.ticket_type.dto import Workflow
from app.ticket_type.workflow import (
    MAX_GUARD_ERRORS,
    CompiledWorkflow,
    implied_state_types,
    named_states,
    workflow_problems,
)

NOTES = "50338430-0c71-4038-a7fe-3060f77cb91d"
TITLE = "698ae286-332a-4175-a16b-6d65fed8290e"
AMOUNT = "0c7a168a-d370-4c0b-ba20-c2496408df00"
OTHER = "00000000-0000-4000-8000-000000000000"
FIELDS = {NOTES, TITLE, AMOUNT}


def workflow(**members: Any) -> Workflow:
    return msgspec.convert(members, Workflow)


def facility_workflow() -> Workflow:
    """The workflow of the facility-request template (the seed's facility type)."""
    document = json.loads((PROJECT_ROOT / "schemas" / "templates" / "facility-request.json").read_text())
    return msgspec.convert(document["workflow"], Workflow)


# --- allows ----------------------------------------------------------------------------------------------------

FREE = CompiledWorkflow.compile(None)
FACILITY = CompiledWorkflow.compile(facility_workflow())


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        pytest.param("OPEN", "CLOSED", True, id="any-other-state"),
        pytest.param("OPEN", "OPEN", False, id="not-itself"),
        pytest.param("OPEN", "open", False, id="not-itself-in-other-case"),
        pytest.param(None, "OPEN", True, id="no-current-state"),
    ],
)
def test_without_transitions_anything_but_the_same_state(current: str | None, target: str, allowed: bool) -> None:
    assert FREE.allows(current, target) is allowed


def test_workflow_without_transitions_declares_none() -> None:
    compiled = CompiledWorkflow.compile(workflow(initialState="NEW"))
    assert compiled.transitions is None
    assert compiled.initial_state == "NEW"
    assert compiled.allows("NEW", "ANYTHING") is True


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        pytest.param("PENDING", "IN_PROGRESS", True, id="declared"),
        pytest.param("PENDING", "CANCELLED", True, id="declared-other"),
        pytest.param("PENDING", "COMPLETED", False, id="not-declared"),
        pytest.param("IN_PROGRESS", "COMPLETED", True, id="declared-from-second-state"),
        pytest.param("IN_PROGRESS", "PENDING", False, id="no-way-back"),
        pytest.param("pending", "in_progress", True, id="case-insensitive"),
        pytest.param("Pending", "In_Progress", True, id="mixed-case"),
        pytest.param("COMPLETED", "PENDING", False, id="from-state-without-transitions"),
        pytest.param("UNKNOWN", "PENDING", False, id="from-undeclared-state"),
        pytest.param("PENDING", "pending", False, id="not-itself"),
        pytest.param(None, "COMPLETED", True, id="no-current-state"),
    ],
)
def test_declared_transitions(current: str | None, target: str, allowed: bool) -> None:
    assert FACILITY.allows(current, target) is allowed


def test_transitions_are_compiled_lower_case() -> None:
    assert FACILITY.transitions == {
        "pending": frozenset({"in_progress", "cancelled"}),
        "in_progress": frozenset({"completed", "cancelled"}),
    }
    assert FACILITY.initial_state == "PENDING"
    assert set(FACILITY.guards) == {"completed"}


def test_empty_transitions_allow_nothing() -> None:
    compiled = CompiledWorkflow.compile(workflow(transitions={}))
    assert compiled.allows("OPEN", "CLOSED") is False
    assert compiled.allows(None, "CLOSED") is True


# --- guard_problems --------------------------------------------------------------------------------------------


def guarded(guard: dict[str, Any], state: str = "Done") -> CompiledWorkflow:
    return CompiledWorkflow.compile(workflow(guards={state: guard}))


@pytest.mark.parametrize(
    ("guard", "data", "reason"),
    [
        pytest.param({"required": [NOTES]}, {NOTES: "fixed"}, {}, id="satisfied"),
        pytest.param(
            {"required": [NOTES]}, {}, {NOTES: "required before a ticket may enter 'DONE'"}, id="missing-field"
        ),
        pytest.param(
            {"required": [NOTES, TITLE]},
            {TITLE: "t"},
            {NOTES: "required before a ticket may enter 'DONE'"},
            id="only-the-missing-field",
        ),
        pytest.param(
            {"required": [NOTES, TITLE]},
            {},
            {NOTES: "required before a ticket may enter 'DONE'", TITLE: "required before a ticket may enter 'DONE'"},
            id="every-missing-field",
        ),
        pytest.param(
            {"required": [NOTES]}, {NOTES: ""}, {NOTES: "required before a ticket may enter 'DONE'"}, id="cleared-text"
        ),
        pytest.param(
            {"required": [NOTES]},
            {NOTES: None},
            {NOTES: "required before a ticket may enter 'DONE'"},
            id="cleared-null",
        ),
        pytest.param(
            {"required": [NOTES]}, {NOTES: []}, {NOTES: "required before a ticket may enter 'DONE'"}, id="cleared-array"
        ),
        pytest.param({"required": [NOTES]}, {NOTES: 0}, {}, id="zero-is-a-value"),
        pytest.param({"required": [NOTES]}, {NOTES: False}, {}, id="false-is-a-value"),
        pytest.param(
            {"properties": {AMOUNT: {"type": "integer", "minimum": 1}}},
            {AMOUNT: 0},
            {AMOUNT: "0 is less than the minimum of 1"},
            id="field-value-refused",
        ),
        pytest.param(
            {"properties": {AMOUNT: {"type": "integer", "minimum": 1}}},
            {AMOUNT: None},
            {},
            id="cleared-value-is-absent-not-checked",
        ),
        pytest.param(
            {"properties": {TITLE: {"type": "object", "properties": {"lines": {"items": {"type": "string"}}}}}},
            {TITLE: {"lines": ["a", 2]}},
            {TITLE: "lines[1]: 2 is not of type 'string'"},
            id="nested-error-located",
        ),
        pytest.param(
            {"properties": {TITLE: {"type": "object", "required": ["street"]}}},
            {TITLE: {"city": "x"}},
            {TITLE: "'street' is a required property"},
            id="nested-required-at-the-field",
        ),
        pytest.param(
            {"minProperties": 2},
            {NOTES: "x"},
            {"data": f"{{'{NOTES}': 'x'}} does not have enough properties"},
            id="whole-document-error",
        ),
        pytest.param(
            {"properties": {NOTES: {"pattern": "^[a-z]+$"}}},
            {NOTES: "abc\n"},
            {NOTES: "'abc\\n' does not match '^[a-z]+$'"},
            id="dollar-is-end-of-text",
        ),
    ],
)
def test_guard_problems(guard: dict[str, Any], data: dict[str, Any], reason: dict[str, str]) -> None:
    assert guarded(guard).guard_problems("DONE", data) == reason


def test_guard_lookup_is_case_insensitive_and_names_the_requested_state() -> None:
    compiled = guarded({"required": [NOTES]}, state="Done")
    assert compiled.guard_problems("done", {}) == {NOTES: "required before a ticket may enter 'done'"}
    assert compiled.guard_problems("DONE", {}) == {NOTES: "required before a ticket may enter 'DONE'"}


def test_unguarded_states_have_no_problems() -> None:
    compiled = guarded({"required": [NOTES]})
    assert compiled.guard_problems("OPEN", {}) == {}
    assert FREE.guard_problems("DONE", {}) == {}


def test_facility_completion_needs_notes() -> None:
    assert FACILITY.guard_problems("COMPLETED", {TITLE: "t"}) == {
        NOTES: "required before a ticket may enter 'COMPLETED'"
    }
    assert FACILITY.guard_problems("COMPLETED", {NOTES: "replaced the fuse"}) == {}
    assert FACILITY.guard_problems("CANCELLED", {}) == {}


def test_guard_errors_are_capped() -> None:
    assert MAX_GUARD_ERRORS == 20
    fields = [f"00000000-0000-4000-8000-{n:012d}" for n in range(30)]
    compiled = guarded({"properties": {field: {"type": "string"} for field in fields}})
    reason = compiled.guard_problems("DONE", {field: 1 for field in fields})
    assert len(reason) == 20
    assert set(reason.values()) == {"1 is not of type 'string'"}


def test_one_required_error_names_all_missing_fields_beyond_the_cap() -> None:
    # A single `required` error is one error, however many fields it names.
    fields = [f"00000000-0000-4000-8000-{n:012d}" for n in range(MAX_GUARD_ERRORS + 10)]
    reason = guarded({"required": fields}).guard_problems("DONE", {})
    assert set(reason) == set(fields)


def test_long_guard_messages_are_cut() -> None:
    compiled = guarded({"properties": {NOTES: {"maxLength": 3}}})
    message = compiled.guard_problems("DONE", {NOTES: "x" * 1000})[NOTES]
    assert message == "'" + "x" * 299 + "…"


# --- workflow_problems -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        pytest.param({}, {}, id="empty-workflow"),
        pytest.param(
            {"initialState": "NEW", "transitions": {"NEW": ["OPEN"], "OPEN": ["DONE"]}, "guards": {"DONE": {}}},
            {},
            id="valid",
        ),
        pytest.param({"initialState": "NEW"}, {}, id="initial-state-without-transitions"),
        pytest.param(
            {"transitions": {"OPEN": ["DONE"], "open": ["CLOSED"]}},
            {"workflow.transitions.open": "state named twice (state names are case-insensitive)"},
            id="from-state-twice",
        ),
        pytest.param(
            {"transitions": {"OPEN": ["DONE", "open"]}},
            {"workflow.transitions.OPEN": "a state cannot follow itself"},
            id="state-follows-itself",
        ),
        pytest.param(
            {"transitions": {"OPEN": ["DONE", "done"]}},
            {"workflow.transitions.OPEN": "a next state is named twice (state names are case-insensitive)"},
            id="next-state-twice",
        ),
        pytest.param(
            {"initialState": "NEW", "transitions": {"OPEN": ["DONE"]}},
            {"workflow.initialState": "no transition leads out of the initial state: new tickets would be stuck"},
            id="initial-state-not-a-source",
        ),
        pytest.param(
            {"initialState": "NEW", "transitions": {"NEW": [], "OPEN": ["DONE"]}},
            {"workflow.initialState": "no transition leads out of the initial state: new tickets would be stuck"},
            id="initial-state-without-successors",
        ),
        pytest.param(
            {"initialState": "new", "transitions": {"NEW": ["OPEN"]}},
            {},
            id="initial-state-case-insensitive",
        ),
        pytest.param(
            {"guards": {"DONE": {"required": [NOTES]}, "done": {}}},
            {"workflow.guards.done": "state named twice (state names are case-insensitive)"},
            id="guarded-twice",
        ),
        pytest.param(
            {"initialState": "NEW", "guards": {"new": {"required": [NOTES]}}},
            {"workflow.guards.new": "the initial state cannot have a guard: use the fields' `required` instead"},
            id="guard-on-initial-state",
        ),
        pytest.param(
            {"guards": {"DONE": {"$ref": "https://example.com/x"}}},
            {
                "workflow.guards.DONE": "$ref 'https://example.com/x' is not supported: "
                "only references to this schema's $defs (#/$defs/name)"
            },
            id="unsafe-guard-schema",
        ),
        pytest.param(
            {"guards": {"DONE": {"required": 5}}},
            {"workflow.guards.DONE": "not a valid JSON Schema 2020-12: 5 is not of type 'array' at required"},
            id="invalid-guard-schema",
        ),
        pytest.param(
            {"guards": {"DONE": {"required": [OTHER, NOTES], "properties": {"zzz": {}, TITLE: {}}}}},
            {"workflow.guards.DONE": f"names fields this type does not have: {OTHER}, zzz"},
            id="guard-names-unknown-fields-sorted",
        ),
        pytest.param(
            {
                "initialState": "NEW",
                "transitions": {"NEW": ["new"], "OPEN": ["A", "a"], "open": []},
                "guards": {"NEW": {}, "X": {"required": [OTHER]}},
            },
            {
                "workflow.transitions.NEW": "a state cannot follow itself",
                "workflow.transitions.OPEN": "a next state is named twice (state names are case-insensitive)",
                "workflow.transitions.open": "state named twice (state names are case-insensitive)",
                "workflow.guards.NEW": "the initial state cannot have a guard: use the fields' `required` instead",
                "workflow.guards.X": f"names fields this type does not have: {OTHER}",
            },
            id="every-problem-is-named",
        ),
    ],
)
def test_workflow_problems(members: dict[str, Any], reason: dict[str, str]) -> None:
    assert workflow_problems(workflow(**members), FIELDS) == reason


def test_guard_field_names_are_checked_at_the_top_level_only() -> None:
    guard = {"properties": {NOTES: {"properties": {"not-a-field": {}}, "required": ["nested"]}}}
    assert workflow_problems(workflow(guards={"DONE": guard}), FIELDS) == {}


def test_facility_workflow_has_no_problems() -> None:
    assert workflow_problems(facility_workflow(), FIELDS) == {}


# --- named_states and implied_state_types ----------------------------------------------------------------------


def test_named_states_lists_every_mention_with_its_place() -> None:
    assert named_states(facility_workflow()) == [
        ("workflow.initialState", "PENDING"),
        ("workflow.transitions.PENDING", "PENDING"),
        ("workflow.transitions.PENDING", "IN_PROGRESS"),
        ("workflow.transitions.PENDING", "CANCELLED"),
        ("workflow.transitions.IN_PROGRESS", "IN_PROGRESS"),
        ("workflow.transitions.IN_PROGRESS", "COMPLETED"),
        ("workflow.transitions.IN_PROGRESS", "CANCELLED"),
        ("workflow.guards.COMPLETED", "COMPLETED"),
    ]


def test_named_states_of_an_empty_workflow() -> None:
    assert named_states(workflow()) == []
    assert named_states(workflow(guards={"DONE": {}})) == [("workflow.guards.DONE", "DONE")]


def test_facility_workflow_implies_its_state_types() -> None:
    assert implied_state_types(facility_workflow()) == {
        "PENDING": "new",
        "IN_PROGRESS": "open",
        "CANCELLED": "closed",
        "COMPLETED": "closed",
    }


@pytest.mark.parametrize(
    ("members", "implied"),
    [
        pytest.param({}, {}, id="nothing-named"),
        pytest.param({"initialState": "NEW"}, {"NEW": "new"}, id="initial-only"),
        pytest.param(
            {"initialState": "new", "transitions": {"NEW": ["OPEN"], "OPEN": ["DONE"]}},
            {"new": "new", "NEW": "new", "OPEN": "open", "DONE": "closed"},
            id="initial-state-case-insensitive",
        ),
        pytest.param(
            {"transitions": {"A": ["B"], "B": []}},
            {"A": "open", "B": "closed"},
            id="state-without-successors-is-closed",
        ),
        pytest.param({"guards": {"DONE": {}}}, {"DONE": "closed"}, id="guarded-state-only"),
    ],
)
def test_implied_state_types(members: dict[str, Any], implied: dict[str, str]) -> None:
    assert implied_state_types(workflow(**members)) == implied
